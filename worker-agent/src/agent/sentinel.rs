//! The input-required sentinel: an agent asks a human by ending its final message with the line
//! `<!-- itervox:needs-input -->`. The line counts only on its own and outside fenced code blocks, so an
//! agent that writes documentation about the sentinel (or quotes it in code) is not taken as asking.

/// The sentinel line.
pub const NEEDS_INPUT: &str = "<!-- itervox:needs-input -->";

/// An open fenced code block: its fence character and length.
struct Fence {
    ch: char,
    len: usize,
}

/// The fence a line opens or closes (```` ``` ````, `~~~`, indented by at most three spaces), if any.
fn fence_of(line: &str) -> Option<(char, usize, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &line[indent..];
    let ch = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = rest.chars().take_while(|c| *c == ch).count();
    (len >= 3).then(|| (ch, len, &rest[len..]))
}

/// The indices of the lines of `message` that are the sentinel, outside fenced code blocks.
fn sentinel_lines(message: &str) -> Vec<usize> {
    let mut open: Option<Fence> = None;
    let mut found = Vec::new();
    for (i, line) in message.lines().enumerate() {
        match (&open, fence_of(line)) {
            (None, Some((ch, len, info))) => {
                // A backtick fence's info string cannot contain a backtick.
                if ch == '~' || !info.contains('`') {
                    open = Some(Fence { ch, len });
                }
            }
            (Some(fence), Some((ch, len, rest))) => {
                if ch == fence.ch && len >= fence.len && rest.trim().is_empty() {
                    open = None;
                }
            }
            (None, None) => {
                if line.trim() == NEEDS_INPUT {
                    found.push(i);
                }
            }
            (Some(_), None) => {}
        }
    }
    found
}

/// The agent's question when `message` carries the sentinel on its own line outside code fences: the
/// message without the sentinel line(s), trimmed. `None` when it does not ask.
pub fn question(message: &str) -> Option<String> {
    let lines = sentinel_lines(message);
    if lines.is_empty() {
        return None;
    }
    let kept: Vec<&str> = message
        .lines()
        .enumerate()
        .filter(|(i, _)| !lines.contains(i))
        .map(|(_, l)| l)
        .collect();
    Some(kept.join("\n").trim().to_string())
}
