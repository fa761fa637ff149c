//! Decoding one line of an agent's stdout: blank lines, JSON objects, text that is not JSON, and lines
//! too long to decode (whose `type` is sniffed instead; terminal lines are still decoded up to a bigger
//! limit so a turn's result is never lost to a long final message).

use serde_json::{Map, Value};

/// Lines up to this size are always decoded.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Terminal lines (`result`, `turn.completed`, `turn.failed`) are decoded up to this size.
pub const MAX_TERMINAL_LINE_BYTES: usize = 16 * 1024 * 1024;

/// One decoded stdout line.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// Only whitespace.
    Blank,
    /// A JSON object.
    Object(Map<String, Value>),
    /// Not a JSON object (plain text, broken or partial JSON); `text` is a lossy, shortened copy.
    NotJson { text: String },
    /// Too long to decode: its size, the first `type` found in it, and whether it looked terminal.
    Oversized {
        bytes: usize,
        kind: Option<String>,
        terminal: bool,
    },
}

/// Decodes `line`; `terminal_types` are the `type` values allowed up to [`MAX_TERMINAL_LINE_BYTES`].
pub fn decode(line: &[u8], terminal_types: &[&str]) -> Line {
    let line = trim(line);
    if line.is_empty() {
        return Line::Blank;
    }
    if line.len() > MAX_LINE_BYTES {
        let terminal = terminal_types.iter().any(|t| mentions_type(line, t));
        if terminal
            && line.len() <= MAX_TERMINAL_LINE_BYTES
            && let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(line)
        {
            let kind = map.get("type").and_then(Value::as_str);
            if kind.is_some_and(|k| terminal_types.contains(&k)) {
                return Line::Object(map);
            }
        }
        return Line::Oversized {
            bytes: line.len(),
            kind: sniff_type(line),
            terminal,
        };
    }
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(map)) => Line::Object(map),
        _ => Line::NotJson {
            text: super::truncate(&String::from_utf8_lossy(line), 2000),
        },
    }
}

fn trim(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &line[start..end]
}

/// Every value of a `"type": "…"` key in `bytes`, in order (compact or spaced JSON).
fn type_values(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    const KEY: &[u8] = b"\"type\"";
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos + KEY.len() <= bytes.len() {
            let found = bytes[pos..].windows(KEY.len()).position(|w| w == KEY)?;
            let mut i = pos + found + KEY.len();
            pos = i;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if bytes.get(i) != Some(&b':') {
                continue;
            }
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if bytes.get(i) != Some(&b'"') {
                continue;
            }
            let start = i + 1;
            let len = bytes[start..].iter().position(|&b| b == b'"' || b == b'\\')?;
            pos = start + len;
            return Some(&bytes[start..start + len]);
        }
        None
    })
}

/// The first `type` value in `bytes`, if any.
pub fn sniff_type(bytes: &[u8]) -> Option<String> {
    type_values(bytes)
        .next()
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// True when some `"type"` key in `bytes` has the value `kind`.
pub fn mentions_type(bytes: &[u8], kind: &str) -> bool {
    type_values(bytes).any(|v| v == kind.as_bytes())
}
