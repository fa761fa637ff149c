//! Writing YAML values as text in the style of the surrounding file: plain scalars where they read
//! back as the same string, quoted otherwise; flow (`[a, b]`, `{k: v}`) or block collections; literal
//! blocks (`|`) for multi-line strings. Every scalar form chosen is checked by parsing it back.

use yaml_serde::Value;

/// How a collection should be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// `[a, b]` / `{k: v}` on the key's line (the file wrote this value so).
    Flow,
    /// Items or entries on the lines below the key (the file wrote this value so).
    Block,
    /// No precedent: flow for short lists of scalars, block for maps and anything nested.
    Default,
}

/// A value ready to go after `key:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rendered {
    /// Fits on the key's line: `key: <text>`.
    Inline(String),
    /// `key:<header>` (header is empty or ` |` / ` |-`), then `lines`, already indented.
    Block { header: String, lines: Vec<String> },
}

/// A value that cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EmitError(pub String);

/// Renders `value` for an entry whose nested lines start at `indent`.
pub(super) fn value(value: &Value, style: Style, indent: usize, step: usize) -> Result<Rendered, EmitError> {
    match value {
        Value::Tagged(t) => Err(EmitError(format!("a value tagged {} cannot be written", t.tag))),
        Value::String(s) if s.contains('\n') && style != Style::Flow => Ok(match literal_block(s, indent) {
            Some((header, lines)) => Rendered::Block { header, lines },
            None => Rendered::Inline(double_quoted(s)),
        }),
        Value::Sequence(items) if items.is_empty() => Ok(Rendered::Inline("[]".into())),
        Value::Mapping(map) if map.is_empty() => Ok(Rendered::Inline("{}".into())),
        Value::Sequence(items) => {
            let flat = items.iter().all(is_short_scalar);
            if style == Style::Flow || (style == Style::Default && flat) {
                Ok(Rendered::Inline(flow(value)?))
            } else {
                Ok(Rendered::Block {
                    header: String::new(),
                    lines: seq_lines(items, indent, step)?,
                })
            }
        }
        Value::Mapping(map) => {
            if style == Style::Flow {
                return Ok(Rendered::Inline(flow(value)?));
            }
            let mut lines = Vec::new();
            for (k, v) in map {
                lines.extend(entry_lines(&key_text(k)?, v, indent, step)?);
            }
            Ok(Rendered::Block {
                header: String::new(),
                lines,
            })
        }
        scalar => Ok(Rendered::Inline(scalar_text(scalar, false)?)),
    }
}

/// The lines of a new `key: value` entry at `indent`, its nested lines one `step` deeper.
pub(super) fn entry_lines(key: &str, v: &Value, indent: usize, step: usize) -> Result<Vec<String>, EmitError> {
    let pad = " ".repeat(indent);
    Ok(match value(v, Style::Default, indent + step, step)? {
        Rendered::Inline(text) => vec![format!("{pad}{key}: {text}")],
        Rendered::Block { header, lines } => {
            let mut out = vec![format!("{pad}{key}:{header}")];
            out.extend(lines);
            out
        }
    })
}

pub(super) fn seq_lines(items: &[Value], indent: usize, step: usize) -> Result<Vec<String>, EmitError> {
    let pad = " ".repeat(indent);
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::Mapping(map) if !map.is_empty() => {
                let mut lines = Vec::new();
                for (k, v) in map {
                    lines.extend(entry_lines(&key_text(k)?, v, indent + 2, step)?);
                }
                if let Some(first) = lines.first_mut() {
                    *first = format!("{pad}- {}", &first[indent + 2..]);
                }
                out.extend(lines);
            }
            Value::Sequence(_) => out.push(format!("{pad}- {}", flow(item)?)),
            _ => match value(item, Style::Default, indent + 2, step)? {
                Rendered::Inline(text) => out.push(format!("{pad}- {text}")),
                Rendered::Block { header, lines } => {
                    out.push(format!("{pad}-{header}"));
                    out.extend(lines);
                }
            },
        }
    }
    Ok(out)
}

fn is_short_scalar(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.contains('\n') && s.len() <= 80,
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
        _ => false,
    }
}

/// A value in flow style, on one line.
pub(super) fn flow(v: &Value) -> Result<String, EmitError> {
    match v {
        Value::Sequence(items) => {
            let parts: Result<Vec<String>, EmitError> = items.iter().map(flow).collect();
            Ok(format!("[{}]", parts?.join(", ")))
        }
        Value::Mapping(map) => {
            let mut parts = Vec::new();
            for (k, v) in map {
                parts.push(format!("{}: {}", scalar_text(k, true)?, flow(v)?));
            }
            Ok(format!("{{{}}}", parts.join(", ")))
        }
        Value::Tagged(t) => Err(EmitError(format!("a value tagged {} cannot be written", t.tag))),
        scalar => scalar_text(scalar, true),
    }
}

/// The text of a mapping key in block context.
pub(super) fn key_text(key: &Value) -> Result<String, EmitError> {
    match key {
        Value::String(s) if s.contains(':') => Ok(double_quoted(s)),
        other => scalar_text(other, false),
    }
}

/// A scalar's text: plain when it reads back as itself, else single- or double-quoted.
fn scalar_text(v: &Value, in_flow: bool) -> Result<String, EmitError> {
    match v {
        Value::Null => Ok("null".into()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) => Ok(string_text(s, in_flow)),
        Value::Sequence(_) | Value::Mapping(_) => flow(v),
        Value::Tagged(t) => Err(EmitError(format!("a value tagged {} cannot be written", t.tag))),
    }
}

fn string_text(s: &str, in_flow: bool) -> String {
    if is_plain_safe(s, in_flow) {
        return s.to_string();
    }
    if !s.chars().any(|c| c.is_control()) {
        let single = format!("'{}'", s.replace('\'', "''"));
        if reads_back(&single, s, in_flow) {
            return single;
        }
    }
    double_quoted(s)
}

/// Words other YAML readers (YAML 1.1) take for booleans or null; always quoted.
const AMBIGUOUS: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"];

fn is_plain_safe(s: &str, in_flow: bool) -> bool {
    let Some(first) = s.chars().next() else { return false };
    if s.trim() != s
        || s.chars().any(|c| c.is_control())
        || "-?:,[]{}#&*!|>'\"%@`".contains(first)
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || (in_flow && s.contains([',', '[', ']', '{', '}']))
        || AMBIGUOUS.contains(&s.to_ascii_lowercase().as_str())
    {
        return false;
    }
    reads_back(s, s, in_flow)
}

/// Whether `text` parses back as the string `expected` (inside a flow list when `in_flow`).
fn reads_back(text: &str, expected: &str, in_flow: bool) -> bool {
    let doc = if in_flow {
        format!("k: [{text}]")
    } else {
        format!("k: {text}")
    };
    let Ok(Value::Mapping(map)) = yaml_serde::from_str::<Value>(&doc) else {
        return false;
    };
    let want = Value::String(expected.to_string());
    match map.get("k") {
        Some(Value::Sequence(items)) if in_flow => items.len() == 1 && items[0] == want,
        Some(v) => !in_flow && *v == want,
        None => false,
    }
}

/// `"..."` with escapes; always reads back exactly.
pub(super) fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A literal block (`|` or `|-`) for a multi-line string, lines indented by `indent`; `None` when the
/// string cannot be written so and read back exactly (control characters, a leading space on its first
/// line, several trailing newlines).
fn literal_block(s: &str, indent: usize) -> Option<(String, Vec<String>)> {
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') || s.ends_with("\n\n") {
        return None;
    }
    if s.lines()
        .find(|l| !l.is_empty())
        .is_some_and(|l| l.starts_with([' ', '\t']))
    {
        return None;
    }
    let (content, header) = match s.strip_suffix('\n') {
        Some(c) => (c, " |"),
        None => (s, " |-"),
    };
    let pad = " ".repeat(indent.max(1));
    let lines: Vec<String> = content
        .split('\n')
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect();
    let doc = format!("k:{header}\n{}\n", lines.join("\n"));
    match yaml_serde::from_str::<Value>(&doc) {
        Ok(Value::Mapping(map)) if map.get("k") == Some(&Value::String(s.to_string())) => {
            Some((header.to_string(), lines))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    #[test]
    fn strings_are_plain_only_when_they_read_back() {
        assert_eq!(string_text("In Progress", false), "In Progress");
        assert_eq!(string_text("claude --model opus", false), "claude --model opus");
        assert_eq!(string_text("", false), "''");
        assert_eq!(string_text("yes", false), "'yes'");
        assert_eq!(string_text("10", false), "'10'");
        assert_eq!(string_text("1e3", false), "'1e3'");
        assert_eq!(string_text("a: b", false), "'a: b'");
        assert_eq!(string_text("#x", false), "'#x'");
        assert_eq!(string_text("it's", false), "it's");
        assert_eq!(string_text("- x", false), "'- x'");
        assert_eq!(string_text(" lead", false), "' lead'");
        assert_eq!(string_text("a,b", true), "'a,b'");
        assert_eq!(string_text("a,b", false), "a,b");
        assert_eq!(string_text("tab\there", false), "\"tab\\there\"");
    }

    #[test]
    fn default_style_lists_flow_maps_block() {
        let list = Value::Sequence(vec![s("Todo"), s("In Progress")]);
        assert_eq!(
            value(&list, Style::Default, 4, 2).unwrap(),
            Rendered::Inline("[Todo, In Progress]".into())
        );
        let block = value(&list, Style::Block, 4, 2).unwrap();
        assert_eq!(
            block,
            Rendered::Block {
                header: String::new(),
                lines: vec!["    - Todo".into(), "    - In Progress".into()]
            }
        );
        let map: Value = yaml_serde::from_str("{command: claude, enabled: true, models: [{id: a, label: A}]}").unwrap();
        let Rendered::Block { lines, .. } = value(&map, Style::Default, 2, 2).unwrap() else {
            panic!()
        };
        assert_eq!(
            lines,
            vec![
                "  command: claude",
                "  enabled: true",
                "  models:",
                "    - id: a",
                "      label: A"
            ]
        );
    }

    #[test]
    fn multi_line_strings_become_literal_blocks() {
        let text = s("line one\n\n  indented\nlast\n");
        let Rendered::Block { header, lines } = value(&text, Style::Default, 4, 2).unwrap() else {
            panic!()
        };
        assert_eq!(header, " |");
        assert_eq!(lines, vec!["    line one", "", "      indented", "    last"]);
        let no_newline = value(&s("a\nb"), Style::Default, 2, 2).unwrap();
        assert!(matches!(no_newline, Rendered::Block { ref header, .. } if header == " |-"));
        // A leading space cannot start a literal block without an indicator: double-quoted instead.
        assert_eq!(
            value(&s(" a\nb"), Style::Default, 2, 2).unwrap(),
            Rendered::Inline("\" a\\nb\"".into())
        );
    }
}
