//! A small Server-Sent Events reader over reqwest, for tests that follow `/events` and `/log-stream`.

use std::time::Duration;

use futures::StreamExt;

/// One SSE event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Reads events from a streaming response.
pub struct SseStream {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl std::fmt::Debug for SseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseStream").finish_non_exhaustive()
    }
}

impl SseStream {
    /// Opens `url` with optional extra headers (e.g. `Last-Event-ID`).
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> anyhow::Result<SseStream> {
        crate::controller::install_crypto();
        let client = reqwest::Client::new();
        let mut req = client.get(url).header("accept", "text/event-stream");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await?;
        anyhow::ensure!(resp.status().is_success(), "GET {url}: {}", resp.status());
        Ok(SseStream {
            body: resp.bytes_stream().boxed(),
            buf: String::new(),
        })
    }

    /// The next event (comments and keep-alives skipped), or `None` when the stream ended or `timeout`
    /// passed.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..pos + 2).collect();
                if let Some(ev) = parse_block(&block) {
                    return Some(ev);
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self
                    .buf
                    .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n")),
                _ => return None,
            }
        }
    }
}

fn parse_block(block: &str) -> Option<SseEvent> {
    let mut ev = SseEvent::default();
    let mut data = Vec::new();
    for line in block.lines() {
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => ev.id = Some(value.to_string()),
            "event" => ev.event = Some(value.to_string()),
            "data" => data.push(value.to_string()),
            _ => {}
        }
    }
    if data.is_empty() && ev.event.is_none() {
        return None;
    }
    if ev.event.as_deref() == Some("keepalive") {
        return None;
    }
    ev.data = data.join("\n");
    Some(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse() {
        assert_eq!(
            parse_block("id: 3\nevent: log\ndata: {\"a\":1}\n\n"),
            Some(SseEvent {
                id: Some("3".into()),
                event: Some("log".into()),
                data: "{\"a\":1}".into()
            })
        );
        assert_eq!(parse_block(": keepalive\n\n"), None);
        assert_eq!(parse_block("data: a\ndata: b\n\n").unwrap().data, "a\nb");
    }
}
