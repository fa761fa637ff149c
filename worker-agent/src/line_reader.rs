//! Reading `\n`-terminated lines from a byte stream with a size cap: used for the controller's frames on
//! stdin and for the agent's stdout. An oversized line is reported (with its length) and skipped, never
//! buffered whole; a last line without a newline is still returned.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// One line read from the stream, without its `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Complete(Vec<u8>),
    /// The line was longer than the cap; its bytes were dropped. `len` is its full length.
    TooLong {
        len: usize,
    },
}

/// A cancel-safe line reader: bytes already taken from the stream are kept in the reader, so dropping a
/// `next_line` future (for example in `tokio::select!`) loses nothing.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    /// Length of the current line once it went over the cap.
    overflow: Option<usize>,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader that returns lines of at most `max` bytes (without the newline).
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner: BufReader::with_capacity(64 * 1024, inner),
            line: Vec::new(),
            overflow: None,
            max,
        }
    }

    /// The next line, or `None` at the end of the stream.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            // Cancel-safe: `fill_buf` is the only await, and everything after it runs synchronously.
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok(take_at_eof(&mut self.line, &mut self.overflow));
            }
            let (used, complete) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    push(&mut self.line, &mut self.overflow, self.max, &available[..i]);
                    (i + 1, true)
                }
                None => {
                    push(&mut self.line, &mut self.overflow, self.max, available);
                    (available.len(), false)
                }
            };
            self.inner.consume(used);
            if complete {
                return Ok(Some(take(&mut self.line, &mut self.overflow)));
            }
        }
    }

    /// The next line when it is already complete in the reader's buffer, without reading the stream:
    /// lets a caller take everything one read brought in before it waits again. A partial line stays
    /// in the reader for [`next_line`](Self::next_line).
    pub fn buffered_line(&mut self) -> Option<Line> {
        let available = self.inner.buffer();
        let i = available.iter().position(|&b| b == b'\n')?;
        push(&mut self.line, &mut self.overflow, self.max, &available[..i]);
        self.inner.consume(i + 1);
        Some(take(&mut self.line, &mut self.overflow))
    }
}

fn push(line: &mut Vec<u8>, overflow: &mut Option<usize>, max: usize, part: &[u8]) {
    match overflow {
        Some(len) => *len += part.len(),
        None if line.len() + part.len() > max => {
            *overflow = Some(line.len() + part.len());
            *line = Vec::new();
        }
        None => line.extend_from_slice(part),
    }
}

fn take(line: &mut Vec<u8>, overflow: &mut Option<usize>) -> Line {
    match overflow.take() {
        Some(len) => Line::TooLong { len },
        None => Line::Complete(std::mem::take(line)),
    }
}

fn take_at_eof(line: &mut Vec<u8>, overflow: &mut Option<usize>) -> Option<Line> {
    if overflow.is_some() || !line.is_empty() {
        Some(take(line, overflow))
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
