//! Names that become path components under the workspace root: issue identifiers (sanitised) and
//! session ids (validated, never rewritten).

use sha2::{Digest, Sha256};

/// Longest sanitised identifier; longer ones are cut and get a hash suffix so they stay distinct.
pub const MAX_COMPONENT_LEN: usize = 80;

/// Length of the hex hash used in suffixes and mirror names.
const HASH_HEX_LEN: usize = 16;

/// Turns an issue identifier into one safe path component: only `[A-Za-z0-9._-]` are kept (every other
/// character, including `/`, NUL and non-ASCII, becomes `_`), it never starts with a dot (so it is never
/// `.`, `..` or hidden), it is never empty, and it is at most [`MAX_COMPONENT_LEN`] bytes (longer
/// results are cut and end with `-` and a hash of the original identifier).
pub fn sanitise_identifier(identifier: &str) -> String {
    let mut out: String = identifier
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    if out.len() > MAX_COMPONENT_LEN {
        // Every character is ASCII by now, so any byte index is a char boundary.
        out.truncate(MAX_COMPONENT_LEN - HASH_HEX_LEN - 1);
        out.push('-');
        out.push_str(&short_hash(identifier));
    }
    out
}

/// A short, stable hex hash of `text` (the first 8 bytes of its SHA-256).
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..HASH_HEX_LEN / 2])
}

/// Why a session id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid session id {id:?}: {reason}")]
pub struct BadSessionId {
    pub id: String,
    pub reason: &'static str,
}

/// Checks a controller-chosen session id, which names the session's folder. Ids are refused rather than
/// rewritten, so two ids can never share a folder.
pub fn validate_session_id(id: &str) -> Result<(), BadSessionId> {
    let bad = |reason| {
        Err(BadSessionId {
            id: id.to_string(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("it is empty");
    }
    if id.len() > 128 {
        return bad("it is longer than 128 bytes");
    }
    if id.starts_with('.') {
        return bad("it starts with a dot");
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
