//! The text format of one local issue file, and the surgical edits the tracker makes to it.
//!
//! ```text
//! ---
//! identifier: ITX-3          # optional: the file stem otherwise (`3.md` -> `ITX-3`)
//! title: Make the build green
//! state: Todo
//! labels: [ci, backend]
//! priority: 2
//! created: 2025-05-01T10:00:00Z
//! updated: 2025-05-02T09:30:00Z
//! blocked_by: [ITX-1]
//! branch: itervox/ITX-3
//! ---
//! The description, any Markdown.
//!
//! <!-- itervox:comments -->
//!
//! ### itervox · 2025-05-02T09:30:00Z
//! One comment per `### <author> · <RFC 3339 time>` block.
//! ```
//!
//! People edit these files by hand, so every edit the tracker makes is local: one front-matter line
//! is replaced (or added before the closing `---`), or a comment block is appended. Everything else
//! stays byte-for-byte as it was. Parsing is lenient about optional fields (a bad `priority` becomes
//! none) and strict about the two that matter: `title` and `state`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use yaml_serde::Value;

use crate::tracker::{Blocker, Comment, Issue};

/// The line that separates the description from the comments.
pub const COMMENTS_MARKER: &str = "<!-- itervox:comments -->";

/// Where the parts of a file are, as byte offsets into its text.
struct Layout<'a> {
    /// The YAML between the two `---` lines.
    yaml: &'a str,
    /// Offset of the closing `---` line (new keys are inserted here).
    closing_line: usize,
    /// Offset of the first byte after the closing line.
    body_start: usize,
    /// The file's line ending.
    newline: &'static str,
}

fn newline_of(text: &str) -> &'static str {
    if text.contains("\r\n") { "\r\n" } else { "\n" }
}

/// Lines with the offset they start at; each line keeps its line ending.
fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_inclusive('\n').scan(0usize, |pos, line| {
        let start = *pos;
        *pos += line.len();
        Some((start, line))
    })
}

fn content(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}

fn layout(text: &str) -> Result<Layout<'_>, String> {
    let mut lines = lines_with_offsets(text);
    let first = lines
        .next()
        .map(|(_, l)| content(l).trim_start_matches('\u{feff}').trim_end());
    if first != Some("---") {
        return Err("the file does not start with a `---` front matter line".into());
    }
    let yaml_start = text.find('\n').map_or(text.len(), |i| i + 1);
    for (start, line) in lines {
        let c = content(line).trim_end();
        if c == "---" || c == "..." {
            return Ok(Layout {
                yaml: &text[yaml_start..start],
                closing_line: start,
                body_start: start + line.len(),
                newline: newline_of(text),
            });
        }
    }
    Err("the front matter has no closing `---` line".into())
}

/// The identifier a file stands for when its front matter names none: the file stem, with the
/// project prefix in front of a bare number (`7.md` -> `ITX-7`).
pub(crate) fn identifier_from_stem(stem: &str, prefix: &str) -> String {
    if !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()) {
        format!("{prefix}-{stem}")
    } else {
        stem.to_string()
    }
}

/// Reads a whole issue file. `stem` is the file name without `.md`. Blockers come back with the
/// identifiers only; the tracker fills in their states.
pub(crate) fn parse(text: &str, stem: &str, prefix: &str) -> Result<Issue, String> {
    let layout = layout(text)?;
    let front: Value = if layout.yaml.trim().is_empty() {
        Value::Null
    } else {
        yaml_serde::from_str(layout.yaml).map_err(|e| format!("invalid YAML front matter: {e}"))?
    };
    if front.as_mapping().is_none() {
        return Err("the front matter is not a map of keys".into());
    }
    let field = |key: &str| front.get(key).and_then(scalar_string).filter(|s| !s.is_empty());

    let identifier = field("identifier").unwrap_or_else(|| identifier_from_stem(stem, prefix));
    let title = field("title").ok_or("the front matter has no `title`")?;
    let state = field("state").ok_or("the front matter has no `state`")?;

    let body = &text[layout.body_start..];
    let (description, comments_text) = match find_marker_line(body) {
        Some((start, end)) => (&body[..start], Some(&body[end..])),
        None => (body, None),
    };
    let description = description.trim_start_matches(['\n', '\r']).trim_end();
    let comments = comments_text
        .map(|t| parse_comments(t, &identifier))
        .unwrap_or_default();

    Ok(Issue {
        id: identifier.clone(),
        identifier,
        title,
        description: (!description.is_empty()).then(|| description.to_string()),
        state,
        priority: front.get("priority").and_then(priority),
        labels: front
            .get("labels")
            .map(string_list)
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.to_lowercase())
            .collect(),
        url: field("url"),
        branch_name: field("branch"),
        blocked_by: front
            .get("blocked_by")
            .map(string_list)
            .unwrap_or_default()
            .into_iter()
            .map(|b| Blocker {
                id: b.clone(),
                identifier: b,
                state: None,
            })
            .collect(),
        comments,
        created_at: field("created").as_deref().and_then(parse_time),
        updated_at: field("updated").as_deref().and_then(parse_time),
    })
}

/// The byte range of the comments marker line in `body`, if any.
fn find_marker_line(body: &str) -> Option<(usize, usize)> {
    lines_with_offsets(body)
        .find(|(_, line)| content(line).trim() == COMMENTS_MARKER)
        .map(|(start, line)| (start, start + line.len()))
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => scalar_string(&t.value),
        _ => None,
    }
}

/// A list written as a YAML sequence or as one comma-separated string; anything else is empty.
fn string_list(v: &Value) -> Vec<String> {
    let items: Vec<String> = match v {
        Value::Sequence(seq) => seq.iter().filter_map(scalar_string).collect(),
        Value::String(s) => s.split(',').map(|p| p.trim().to_string()).collect(),
        _ => Vec::new(),
    };
    items.into_iter().filter(|s| !s.is_empty()).collect()
}

fn priority(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC) or a bare date (midnight UTC).
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// A comment header line: `### <author> · <time>`. The time may be missing or unreadable in a
/// hand-written block; the author may not.
fn comment_header(line: &str) -> Option<(String, Option<DateTime<Utc>>)> {
    let rest = content(line).strip_prefix("### ")?;
    let (author, time) = rest.rsplit_once(" · ")?;
    let author = author.trim();
    if author.is_empty() {
        return None;
    }
    Some((author.to_string(), parse_time(time)))
}

fn parse_comments(text: &str, identifier: &str) -> Vec<Comment> {
    let mut comments: Vec<Comment> = Vec::new();
    let mut body: Vec<&str> = Vec::new();
    let finish = |comments: &mut Vec<Comment>, body: &mut Vec<&str>| {
        if let Some(last) = comments.last_mut() {
            last.body = body.join("\n").trim_matches(['\n', '\r']).trim_end().to_string();
        }
        body.clear();
    };
    for (_, line) in lines_with_offsets(text) {
        if let Some((author, created_at)) = comment_header(line) {
            finish(&mut comments, &mut body);
            comments.push(Comment {
                id: format!("{identifier}-c{}", comments.len() + 1),
                author,
                body: String::new(),
                created_at,
            });
        } else if !comments.is_empty() {
            let line = content(line);
            // A body line that would read as a header was escaped with a backslash when written.
            match line.strip_prefix('\\') {
                Some(unescaped) if comment_header(unescaped).is_some() => body.push(unescaped),
                _ => body.push(line),
            }
        }
    }
    finish(&mut comments, &mut body);
    comments
}

/// A value as a YAML scalar: plain when that reads back as the same string, double-quoted otherwise.
pub(crate) fn yaml_scalar(value: &str) -> String {
    let plain_chars = value
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '.' | '/' | '-' | '+'));
    let starts_well = value.chars().next().is_some_and(|c| c.is_alphanumeric() || c == '_');
    let keyword = matches!(
        value.to_ascii_lowercase().as_str(),
        "y" | "yes" | "n" | "no" | "true" | "false" | "on" | "off" | "null"
    );
    if plain_chars && starts_well && !value.ends_with(' ') && !keyword && value.parse::<f64>().is_err() {
        value.to_string()
    } else {
        // A JSON string is a valid YAML double-quoted scalar.
        serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}"))
    }
}

/// Sets one top-level front-matter key to a string value: the key's line (and any continuation
/// lines of a block value) is replaced; a missing key is added before the closing `---`. Every other
/// byte of the file is kept.
pub(crate) fn set_key(text: &str, key: &str, value: &str) -> Result<String, String> {
    let layout = layout(text)?;
    let yaml_offset = layout.closing_line - layout.yaml.len();
    let scalar = yaml_scalar(value);
    let prefix = format!("{key}:");

    let lines: Vec<(usize, &str)> = lines_with_offsets(layout.yaml).collect();
    let found = lines.iter().position(|(_, line)| {
        line.strip_prefix(&prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
    });
    let Some(index) = found else {
        let at = layout.closing_line;
        return Ok(format!(
            "{}{key}: {scalar}{}{}",
            &text[..at],
            layout.newline,
            &text[at..]
        ));
    };

    let (line_start, line) = lines[index];
    let value_start = yaml_offset + line_start + prefix.len();
    let mut end = yaml_offset + line_start + content(line).len();
    let inline_value = content(line)[prefix.len()..].trim();
    // A block value (`key:` followed by indented lines, a `- item` list, or `|`/`>` text) continues
    // on the next lines; they belong to the key and are replaced with it.
    if inline_value.is_empty() || inline_value.starts_with(['|', '>']) {
        for (start, next) in &lines[index + 1..] {
            if next.starts_with([' ', '\t', '-']) {
                end = yaml_offset + start + content(next).len();
            } else {
                break;
            }
        }
    }
    Ok(format!("{} {scalar}{}", &text[..value_start], &text[end..]))
}

/// Appends one comment block, adding the comments marker first when the file has none.
pub(crate) fn append_comment(text: &str, author: &str, at: DateTime<Utc>, body: &str) -> String {
    let nl = newline_of(text);
    let mut out = String::with_capacity(text.len() + body.len() + 96);
    out.push_str(text);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str(nl);
    }
    let has_marker = layout(text)
        .map(|l| find_marker_line(&text[l.body_start..]).is_some())
        .unwrap_or(false);
    if !has_marker {
        out.push_str(nl);
        out.push_str(COMMENTS_MARKER);
        out.push_str(nl);
    }
    let author = author.replace(['\n', '\r'], " ");
    let author = author.trim();
    let author = if author.is_empty() { "itervox" } else { author };
    out.push_str(nl);
    out.push_str(&format!(
        "### {author} · {}{nl}",
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    ));
    let body = body.replace("\r\n", "\n");
    for line in body.trim_end().split('\n') {
        if comment_header(line).is_some() {
            out.push('\\');
        }
        out.push_str(line);
        out.push_str(nl);
    }
    out
}

/// The text of a new issue file.
pub(crate) fn render_new(issue: &Issue) -> String {
    let mut out = String::from("---\n");
    out.push_str(&format!("identifier: {}\n", yaml_scalar(&issue.identifier)));
    out.push_str(&format!("title: {}\n", yaml_scalar(&issue.title)));
    out.push_str(&format!("state: {}\n", yaml_scalar(&issue.state)));
    if !issue.labels.is_empty() {
        let labels: Vec<String> = issue.labels.iter().map(|l| yaml_scalar(l)).collect();
        out.push_str(&format!("labels: [{}]\n", labels.join(", ")));
    }
    if let Some(p) = issue.priority {
        out.push_str(&format!("priority: {p}\n"));
    }
    if let Some(t) = issue.created_at {
        out.push_str(&format!("created: {}\n", t.to_rfc3339_opts(SecondsFormat::Secs, true)));
    }
    if !issue.blocked_by.is_empty() {
        let ids: Vec<String> = issue.blocked_by.iter().map(|b| yaml_scalar(&b.identifier)).collect();
        out.push_str(&format!("blocked_by: [{}]\n", ids.join(", ")));
    }
    out.push_str("---\n");
    if let Some(d) = issue.description.as_deref().filter(|d| !d.trim().is_empty()) {
        out.push_str(d.trim_end());
        out.push('\n');
    }
    out
}
