//! The line-and-indentation outline of block-style YAML: which line holds which mapping key, which
//! lines an entry's value spans, and what shape that value has (inline scalar, flow collection, block
//! map, block list, block scalar). The loader uses it to point errors at a key's line; the editor uses
//! it to replace exactly the lines a key owns and nothing else.
//!
//! It is not a YAML parser: it classifies lines (blank, comment, content, continuation of a block
//! scalar / multi-line flow collection / multi-line quoted scalar) and reads `key:` prefixes. The
//! editor re-parses its result with a real YAML parser and refuses to write when the two disagree.

use std::ops::Range;

/// What a line is, as far as structure goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// Only whitespace.
    Blank,
    /// Only a comment (first non-space character is `#`).
    Comment,
    /// Starts a node: a `key:` entry, a `- ` item or a scalar line.
    Content,
    /// Inside a block scalar, a multi-line flow collection or a multi-line quoted scalar started above.
    Continuation,
}

/// How an entry's value begins on the key's own line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inline {
    /// Nothing (or only an anchor / tag): the value is null or a block collection below.
    Nothing,
    /// A plain or quoted scalar.
    Scalar,
    /// `[...]` or `{...}`, possibly continued on the following lines.
    Flow,
    /// `|` or `>`, the text on the following lines.
    BlockScalar,
    /// `*name`.
    Alias,
}

/// A `key: value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The key, unquoted.
    pub key: String,
    /// Byte offset just after the `:`.
    pub colon_end: usize,
    /// The value text on this line, without a trailing comment and trailing spaces (may be empty).
    pub value: Range<usize>,
    /// Byte offset of the `#` of a trailing comment on this line.
    pub comment: Option<usize>,
    pub inline: Inline,
    /// The value carries an `&anchor`.
    pub anchored: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// Byte offset of the line's first character.
    pub start: usize,
    /// Byte offset of the end of its text (before `\r\n` or `\n`).
    pub end: usize,
    /// Byte offset of the next line.
    pub next: usize,
    /// Leading spaces.
    pub indent: usize,
    pub kind: LineKind,
    /// Number of `- ` sequence indicators the line starts with.
    pub dashes: usize,
    /// Set for content lines that are a mapping entry (and start with no `- `).
    pub entry: Option<Entry>,
}

/// The shape of an entry's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `key:` and nothing below: null.
    Empty,
    /// The value starts on the key's line.
    Inline(Inline),
    /// Entries on the following lines at `child_indent`.
    BlockMap { child_indent: usize },
    /// `- ` items on the following lines at `item_indent` (may equal the key's indent).
    BlockSeq { item_indent: usize },
}

/// A block mapping: its entries sit at `indent` within `lines`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    pub lines: Range<usize>,
    /// `None` when the mapping has no entries yet (an empty document).
    pub indent: Option<usize>,
}

/// A place where the outline cannot follow a path as a block mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotAMap {
    /// 0-based line index of the offending line.
    pub line: usize,
}

/// The outline of one YAML text.
#[derive(Debug)]
pub(crate) struct Outline<'a> {
    pub text: &'a str,
    pub lines: Vec<Line>,
}

enum Mode {
    Normal,
    BlockScalar { parent_indent: usize },
    Flow { depth: usize, quote: Option<char> },
    Quoted { quote: char },
}

impl<'a> Outline<'a> {
    pub fn new(text: &'a str) -> Outline<'a> {
        let mut lines = Vec::new();
        let mut mode = Mode::Normal;
        let mut pos = 0;
        while pos < text.len() {
            let rest = &text[pos..];
            let (len, advance) = match rest.find('\n') {
                Some(i) => (i, i + 1),
                None => (rest.len(), rest.len()),
            };
            let mut end = pos + len;
            if text[pos..end].ends_with('\r') {
                end -= 1;
            }
            let raw = &text[pos..end];
            let indent = raw.len() - raw.trim_start_matches(' ').len();
            let trimmed = raw.trim();
            let mut line = Line {
                start: pos,
                end,
                next: pos + advance,
                indent,
                kind: LineKind::Content,
                dashes: 0,
                entry: None,
            };
            mode = match mode {
                Mode::BlockScalar { parent_indent } if trimmed.is_empty() => {
                    line.kind = LineKind::Blank;
                    Mode::BlockScalar { parent_indent }
                }
                Mode::BlockScalar { parent_indent } if indent > parent_indent => {
                    line.kind = LineKind::Continuation;
                    Mode::BlockScalar { parent_indent }
                }
                Mode::Flow { mut depth, mut quote } => {
                    line.kind = LineKind::Continuation;
                    scan_flow(raw, &mut depth, &mut quote, true);
                    if depth == 0 && quote.is_none() {
                        Mode::Normal
                    } else {
                        Mode::Flow { depth, quote }
                    }
                }
                Mode::Quoted { quote } => {
                    line.kind = LineKind::Continuation;
                    match find_closing_quote(raw, 0, quote) {
                        Some(_) => Mode::Normal,
                        None => Mode::Quoted { quote },
                    }
                }
                Mode::Normal | Mode::BlockScalar { .. } => {
                    if trimmed.is_empty() {
                        line.kind = LineKind::Blank;
                        Mode::Normal
                    } else if trimmed.starts_with('#') {
                        line.kind = LineKind::Comment;
                        Mode::Normal
                    } else {
                        analyse_content(text, &mut line)
                    }
                }
            };
            lines.push(line);
            pos += advance;
        }
        Outline { text, lines }
    }

    /// The whole document as one mapping scope.
    pub fn top(&self) -> Scope {
        let indent = self
            .lines
            .iter()
            .find(|l| l.kind == LineKind::Content)
            .map(|l| l.indent);
        Scope {
            lines: 0..self.lines.len(),
            indent,
        }
    }

    /// Line indices of the entries of `scope`, in order.
    pub fn entries(&self, scope: &Scope) -> Result<Vec<usize>, NotAMap> {
        let Some(indent) = scope.indent else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut i = scope.lines.start;
        while i < scope.lines.end {
            let line = &self.lines[i];
            if line.kind != LineKind::Content || line.indent > indent {
                i += 1;
                continue;
            }
            if line.indent < indent || line.entry.is_none() {
                return Err(NotAMap { line: i });
            }
            out.push(i);
            i = self.extent_end(i);
        }
        Ok(out)
    }

    /// The entry of `scope` whose key is `key`.
    pub fn find(&self, scope: &Scope, key: &str) -> Result<Option<usize>, NotAMap> {
        Ok(self
            .entries(scope)?
            .into_iter()
            .find(|&i| self.lines[i].entry.as_ref().is_some_and(|e| e.key == key)))
    }

    /// One past the last line the entry at `line` owns: its value's lines, and comments or blank lines
    /// only when more of the value follows them.
    pub fn extent_end(&self, line: usize) -> usize {
        let head = &self.lines[line];
        let compact_seq_allowed = head.entry.as_ref().is_some_and(|e| e.inline == Inline::Nothing);
        let mut end = line + 1;
        let mut i = line + 1;
        while i < self.lines.len() {
            let l = &self.lines[i];
            match l.kind {
                LineKind::Blank | LineKind::Comment => {}
                LineKind::Continuation => end = i + 1,
                LineKind::Content if l.indent > head.indent => end = i + 1,
                LineKind::Content if l.indent == head.indent && l.dashes > 0 && compact_seq_allowed => end = i + 1,
                LineKind::Content => break,
            }
            i += 1;
        }
        end
    }

    /// The shape of the value of the entry at `line`.
    pub fn shape(&self, line: usize) -> Shape {
        let Some(entry) = &self.lines[line].entry else {
            return Shape::Empty;
        };
        if entry.inline != Inline::Nothing {
            return Shape::Inline(entry.inline);
        }
        let end = self.extent_end(line);
        match self.lines[line + 1..end].iter().find(|l| l.kind == LineKind::Content) {
            None => Shape::Empty,
            Some(l) if l.dashes > 0 => Shape::BlockSeq { item_indent: l.indent },
            Some(l) => Shape::BlockMap { child_indent: l.indent },
        }
    }

    /// The mapping under the entry at `line`, when its value is a block map.
    pub fn child_scope(&self, line: usize) -> Option<Scope> {
        match self.shape(line) {
            Shape::BlockMap { child_indent } => Some(Scope {
                lines: line + 1..self.extent_end(line),
                indent: Some(child_indent),
            }),
            _ => None,
        }
    }

    /// The entry at `path`, following block maps.
    #[cfg(test)]
    pub fn find_path(&self, path: &[String]) -> Option<usize> {
        let mut scope = self.top();
        let mut found = None;
        for key in path {
            if let Some(line) = found {
                scope = self.child_scope(line)?;
            }
            found = Some(self.find(&scope, key).ok()??);
        }
        found
    }

    /// Where to point at `path` in an error: the line and 1-based column of its value (or of the
    /// deepest part of the path that exists). `None` when not even the first key is found.
    pub fn locate(&self, path: &[String]) -> Option<(usize, usize)> {
        let mut scope = self.top();
        let mut found: Option<usize> = None;
        for key in path {
            if let Some(line) = found {
                match self.child_scope(line) {
                    Some(child) => scope = child,
                    None => break,
                }
            }
            match self.find(&scope, key) {
                Ok(Some(line)) => found = Some(line),
                _ => break,
            }
        }
        let line = found?;
        let l = &self.lines[line];
        let at = match &l.entry {
            Some(e) if !e.value.is_empty() => e.value.start,
            _ => l.start + l.indent,
        };
        Some((line, self.text[l.start..at].chars().count() + 1))
    }

    /// The indentation step the file uses for nested maps (2 when it has none).
    pub fn indent_step(&self) -> usize {
        (0..self.lines.len())
            .filter(|&i| self.lines[i].entry.is_some())
            .find_map(|i| match self.shape(i) {
                Shape::BlockMap { child_indent } if child_indent > self.lines[i].indent => {
                    Some(child_indent - self.lines[i].indent)
                }
                _ => None,
            })
            .unwrap_or(2)
    }

    /// The line ending the text uses (`\r\n` when its first line ends so).
    pub fn newline(&self) -> &'static str {
        match self.lines.first() {
            Some(l) if self.text[l.end..l.next].starts_with('\r') => "\r\n",
            _ => "\n",
        }
    }
}

/// Reads the structure of a content line and returns the mode for the lines after it.
fn analyse_content(text: &str, line: &mut Line) -> Mode {
    let raw = &text[line.start..line.end];
    let bytes = raw.as_bytes();
    let mut pos = line.indent;
    let mut last_dash = line.indent;
    while pos < bytes.len() && bytes[pos] == b'-' && (pos + 1 == bytes.len() || bytes[pos + 1] == b' ') {
        line.dashes += 1;
        last_dash = pos;
        pos += 1;
        while pos < bytes.len() && bytes[pos] == b' ' {
            pos += 1;
        }
    }
    // The key, if the node here is `key: ...`.
    let mut key: Option<(String, usize)> = None; // (key, offset after ':')
    let mut key_col = pos;
    if pos < bytes.len() {
        match bytes[pos] {
            q @ (b'"' | b'\'') => {
                if let Some(close) = find_closing_quote(raw, pos + 1, q as char) {
                    let after = skip_spaces(raw, close + 1);
                    if raw[after..].starts_with(':') && is_break_after(raw, after + 1) {
                        key = Some((unquote(&raw[pos..=close]), after + 1));
                    }
                }
            }
            b'[' | b'{' | b'|' | b'>' | b'#' | b'&' | b'*' | b'!' | b'%' | b'@' | b'`' => {}
            b'?' if is_break_after(raw, pos + 1) => {}
            _ => {
                let mut i = pos;
                while i < bytes.len() {
                    if bytes[i] == b'#' && i > pos && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
                        break;
                    }
                    if bytes[i] == b':' && is_break_after(raw, i + 1) {
                        key = Some((raw[pos..i].trim_end().to_string(), i + 1));
                        break;
                    }
                    i += 1;
                }
            }
        }
    }
    let value_from = match &key {
        Some((_, colon_end)) => skip_spaces(raw, *colon_end),
        None => {
            key_col = if line.dashes > 0 { last_dash } else { line.indent };
            pos
        }
    };
    let comment = find_comment(raw, value_from);
    let value_end = raw[..comment.unwrap_or(raw.len())].trim_end().len().max(value_from);
    let value = &raw[value_from..value_end];
    let (inline, anchored, rest_offset) = classify_inline(value);
    let rest = &value[rest_offset..];

    let next_mode = match inline {
        Inline::BlockScalar => Mode::BlockScalar { parent_indent: key_col },
        Inline::Flow => {
            let mut depth = 0;
            let mut quote = None;
            scan_flow(rest, &mut depth, &mut quote, false);
            if depth > 0 || quote.is_some() {
                Mode::Flow { depth, quote }
            } else {
                Mode::Normal
            }
        }
        Inline::Scalar => match rest.chars().next() {
            Some(q @ ('"' | '\'')) if find_closing_quote(rest, 1, q).is_none() => Mode::Quoted { quote: q },
            _ => Mode::Normal,
        },
        Inline::Nothing | Inline::Alias => Mode::Normal,
    };
    if line.dashes == 0
        && let Some((key, colon_end)) = key
    {
        line.entry = Some(Entry {
            key,
            colon_end: line.start + colon_end,
            value: line.start + value_from..line.start + value_end,
            comment: comment.map(|c| line.start + c),
            inline,
            anchored,
        });
    }
    next_mode
}

/// Splits leading `&anchor` / `!tag` tokens off a value and says what follows them.
fn classify_inline(value: &str) -> (Inline, bool, usize) {
    let mut anchored = false;
    let mut offset = 0;
    loop {
        let rest = &value[offset..];
        if rest.starts_with('&') || rest.starts_with('!') {
            anchored |= rest.starts_with('&');
            let token_len = rest.find([' ', '\t']).unwrap_or(rest.len());
            offset = skip_spaces(value, offset + token_len);
            continue;
        }
        break;
    }
    let rest = &value[offset..];
    let inline = match rest.chars().next() {
        None => Inline::Nothing,
        Some('[' | '{') => Inline::Flow,
        Some('|' | '>') => Inline::BlockScalar,
        Some('*') => Inline::Alias,
        Some(_) => Inline::Scalar,
    };
    (inline, anchored, offset)
}

/// Updates bracket depth and open quote over a piece of flow text. Quotes open only at the start of a
/// scalar; `#` after whitespace ends the line's text.
fn scan_flow(s: &str, depth: &mut usize, quote: &mut Option<char>, mut at_token_start: bool) {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut prev_space = true;
    while i < chars.len() {
        let c = chars[i];
        match *quote {
            Some('"') => {
                if c == '\\' {
                    i += 1;
                } else if c == '"' {
                    *quote = None;
                }
            }
            Some(_) => {
                if c == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 1;
                    } else {
                        *quote = None;
                    }
                }
            }
            None => match c {
                '#' if prev_space => return,
                '"' | '\'' if at_token_start => *quote = Some(c),
                '[' | '{' => {
                    *depth += 1;
                    at_token_start = true;
                }
                ']' | '}' => *depth = depth.saturating_sub(1),
                ',' => at_token_start = true,
                ':' => at_token_start = true,
                ' ' | '\t' => {}
                _ => at_token_start = false,
            },
        }
        prev_space = c == ' ' || c == '\t';
        i += 1;
    }
}

/// Byte offset of the quote closing a scalar opened by `quote` just before `from`.
fn find_closing_quote(s: &str, from: usize, quote: char) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        let b = bytes[i];
        if quote == '"' && b == b'\\' {
            i += 2;
            continue;
        }
        if b == quote as u8 {
            if quote == '\'' && bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Byte offset of the `#` of a trailing comment at or after `from`, skipping quoted text.
fn find_comment(s: &str, from: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = from;
    let mut quote: Option<u8> = None;
    let mut token_start = true;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(b'"') => {
                if b == b'\\' {
                    i += 1;
                } else if b == b'"' {
                    quote = None;
                }
            }
            Some(_) => {
                if b == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 1;
                    } else {
                        quote = None;
                    }
                }
            }
            None => match b {
                b'#' if i == from || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t' => return Some(i),
                b'"' | b'\'' if token_start => quote = Some(b),
                b'[' | b'{' | b',' | b':' | b' ' | b'\t' => token_start = true,
                _ => token_start = false,
            },
        }
        i += 1;
    }
    None
}

fn skip_spaces(s: &str, mut i: usize) -> usize {
    let bytes = s.as_bytes();
    while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
        i += 1;
    }
    i
}

fn is_break_after(s: &str, i: usize) -> bool {
    matches!(s.as_bytes().get(i), None | Some(b' ' | b'\t'))
}

/// The text of a quoted key.
fn unquote(quoted: &str) -> String {
    let inner = &quoted[1..quoted.len() - 1];
    if quoted.starts_with('\'') {
        return inner.replace("''", "'");
    }
    // Double-quoted: let the YAML parser handle escapes; fall back to the raw text.
    yaml_serde::from_str::<String>(quoted).unwrap_or_else(|_| inner.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    const DOC: &str = "\
# top comment
tracker:
  kind: local   # the tracker
  active_states: [Todo,
    \"In Progress\"]
agent:
  prompt: |
    key: not a key
    # not a comment

  ssh_hosts:
  - a
  - b
  # trailing comment
  \"quoted key\": 'x # y'
  anchor: &base
    a: 1
workspace: {root: x}
";

    #[test]
    fn finds_keys_through_block_maps_only() {
        let o = Outline::new(DOC);
        let line = |p: &[&str]| o.find_path(&path(p)).map(|i| i + 1);
        assert_eq!(line(&["tracker", "kind"]), Some(3));
        assert_eq!(line(&["tracker", "active_states"]), Some(4));
        assert_eq!(line(&["agent", "ssh_hosts"]), Some(11));
        assert_eq!(line(&["agent", "quoted key"]), Some(15));
        assert_eq!(line(&["agent", "anchor", "a"]), Some(17));
        assert_eq!(line(&["agent", "key"]), None, "block scalar text is not a key");
        assert_eq!(line(&["workspace", "root"]), None, "flow maps are not followed");
    }

    #[test]
    fn extents_and_shapes() {
        let o = Outline::new(DOC);
        let at = |p: &[&str]| o.find_path(&path(p)).unwrap();
        let hosts = at(&["agent", "ssh_hosts"]);
        assert_eq!(o.shape(hosts), Shape::BlockSeq { item_indent: 2 });
        // The trailing comment is not part of the list.
        assert_eq!(o.extent_end(hosts), hosts + 3);
        let prompt = at(&["agent", "prompt"]);
        assert_eq!(o.shape(prompt), Shape::Inline(Inline::BlockScalar));
        assert_eq!(o.extent_end(prompt), prompt + 3);
        assert_eq!(o.shape(at(&["tracker", "active_states"])), Shape::Inline(Inline::Flow));
        assert_eq!(
            o.extent_end(at(&["tracker", "active_states"])),
            at(&["tracker", "active_states"]) + 2
        );
        let anchor = at(&["agent", "anchor"]);
        assert!(o.lines[anchor].entry.as_ref().unwrap().anchored);
        assert_eq!(o.shape(anchor), Shape::BlockMap { child_indent: 4 });
        let kind = &o.lines[at(&["tracker", "kind"])];
        let e = kind.entry.as_ref().unwrap();
        assert_eq!(&DOC[e.value.clone()], "local");
        assert_eq!(&DOC[e.comment.unwrap()..kind.end], "# the tracker");
        let quoted = o.lines[at(&["agent", "quoted key"])].entry.clone().unwrap();
        assert_eq!(&DOC[quoted.value.clone()], "'x # y'");
        assert_eq!(quoted.comment, None);
    }

    #[test]
    fn locate_points_at_the_value() {
        let o = Outline::new(DOC);
        assert_eq!(o.locate(&path(&["tracker", "kind"])), Some((2, 9)));
        // Missing leaf: the deepest existing key.
        assert_eq!(o.locate(&path(&["tracker", "nope"])).map(|x| x.0), Some(1));
        assert_eq!(o.locate(&path(&["nope"])), None);
        assert_eq!(o.indent_step(), 2);
    }
}
