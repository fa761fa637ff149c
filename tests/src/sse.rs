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
    /// Received bytes (`\r` removed); `buf[start..]` is not consumed yet, and `buf[start..scanned]`
    /// holds no block end, so a burst of many events is parsed in linear time.
    buf: Vec<u8>,
    start: usize,
    scanned: usize,
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
            buf: Vec::new(),
            start: 0,
            scanned: 0,
        })
    }

    /// The next event (comments and keep-alives skipped), or `None` when the stream ended or `timeout`
    /// passed.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(rel) = memchr::memmem::find(&self.buf[self.scanned..], b"\n\n") {
                let end = self.scanned + rel + 2;
                let block = String::from_utf8_lossy(&self.buf[self.start..end]).into_owned();
                self.start = end;
                self.scanned = end;
                if self.start > 1 << 20 {
                    self.buf.drain(..self.start);
                    self.scanned -= self.start;
                    self.start = 0;
                }
                if let Some(ev) = parse_block(&block) {
                    return Some(ev);
                }
                continue;
            }
            // The last byte may be the first half of a block end.
            self.scanned = self.buf.len().saturating_sub(1).max(self.start);
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(Some(Ok(chunk))) if memchr::memchr(b'\r', &chunk).is_none() => self.buf.extend_from_slice(&chunk),
                Ok(Some(Ok(chunk))) => self.buf.extend(chunk.iter().filter(|&&b| b != b'\r')),
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

    /// Blocks split anywhere across chunks (even inside `\r\n\r\n` or a multi-byte character) and
    /// many blocks in one chunk all come out whole, in order.
    #[tokio::test]
    async fn events_survive_any_chunking() {
        let text = "id: 1\r\ndata: caf\u{e9}\r\n\r\n: keepalive\n\nid: 2\ndata: two\n\nid: 3\ndata: three\n\n";
        let bytes = text.as_bytes();
        for size in [1, 2, 3, 5, 7, bytes.len()] {
            let chunks: Vec<reqwest::Result<bytes::Bytes>> = bytes
                .chunks(size)
                .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
                .collect();
            let mut stream = SseStream {
                body: futures::stream::iter(chunks).boxed(),
                buf: Vec::new(),
                start: 0,
                scanned: 0,
            };
            let mut got = Vec::new();
            while let Some(ev) = stream.next(Duration::from_secs(1)).await {
                got.push((ev.id.unwrap_or_default(), ev.data));
            }
            let want: Vec<(String, String)> = [("1", "caf\u{e9}"), ("2", "two"), ("3", "three")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            assert_eq!(got, want, "chunks of {size}");
        }
    }
}
