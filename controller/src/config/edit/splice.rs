//! One edit applied to the front matter twice: surgically to its text, where only the lines the edited
//! key owns change, and plainly to its value tree, which is what the new text must read back as.

use std::ops::Range;

use yaml_serde::{Mapping, Value};

use super::Edit;
use super::emit::{self, Rendered, Style};
use crate::config::load::reader::{describe, dotted, scalar_text};
use crate::config::outline::{Inline, LineKind, NotAMap, Outline, Scope, Shape};

/// Why an edit cannot be applied to this text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SpliceError {
    /// The dotted key where the edit stopped.
    pub key: String,
    pub reason: String,
}

fn refuse(path: &[String], reason: impl Into<String>) -> SpliceError {
    SpliceError {
        key: dotted(path),
        reason: reason.into(),
    }
}

/// What one step of an edit does to the text.
enum Plan {
    /// Replace these bytes with this text.
    Splice { range: Range<usize>, text: String },
    /// Apply these finer edits in order (each against the text the previous one left).
    Then(Vec<Edit>),
    /// The text already says it.
    Nothing,
}

/// Applies `edit` to the front matter text `yaml`.
pub(super) fn apply_text(yaml: &mut String, edit: &Edit) -> Result<(), SpliceError> {
    let plan = {
        let outline = Outline::new(yaml);
        match edit {
            Edit::Set { path, value } => plan_set(&outline, path, value)?,
            Edit::Remove { path } => plan_remove(&outline, path)?,
        }
    };
    match plan {
        Plan::Splice { range, text } => yaml.replace_range(range, &text),
        Plan::Then(edits) => {
            for e in &edits {
                apply_text(yaml, e)?;
            }
        }
        Plan::Nothing => {}
    }
    Ok(())
}

/// Applies `edit` to the value tree `root` (the expected reading of the edited text).
pub(super) fn apply_value(root: &mut Value, edit: &Edit) -> Result<(), SpliceError> {
    match edit {
        Edit::Set { path, value } => set_value(root, path, path, value.clone()),
        Edit::Remove { path } => {
            remove_value(root, path);
            Ok(())
        }
    }
}

fn not_a_map(outline: &Outline<'_>, path: &[String], e: NotAMap) -> SpliceError {
    let at = if path.is_empty() {
        "the front matter".to_string()
    } else {
        dotted(path)
    };
    let text = outline
        .lines
        .get(e.line)
        .map(|l| outline.text[l.start..l.end].trim().to_string())
        .unwrap_or_default();
    refuse(
        path,
        format!("{at} is not a block map the editor can follow (at `{text}`)"),
    )
}

fn entry_key(outline: &Outline<'_>, line: usize) -> String {
    outline.lines[line]
        .entry
        .as_ref()
        .map(|e| e.key.clone())
        .unwrap_or_default()
}

fn child_path(path: &[String], key: String) -> Vec<String> {
    let mut p = path.to_vec();
    p.push(key);
    p
}

/// `value` wrapped in maps for each key of `rest`.
fn nest(rest: &[String], value: &Value) -> Value {
    rest.iter().rev().fold(value.clone(), |inner, key| {
        let mut m = Mapping::new();
        m.insert(Value::String(key.clone()), inner);
        Value::Mapping(m)
    })
}

/// The value at `path` in the text as it is now.
fn node_value(text: &str, path: &[String]) -> Result<Value, SpliceError> {
    let root: Value =
        yaml_serde::from_str(text).map_err(|e| refuse(path, format!("the front matter does not parse: {e}")))?;
    let mut node = &root;
    for key in path {
        node = match node {
            Value::Mapping(m) => lookup(m, key).map(|(_, v)| v).unwrap_or(&Value::Null),
            _ => &Value::Null,
        };
    }
    Ok(node.clone())
}

fn lookup<'m>(map: &'m Mapping, key: &str) -> Option<(&'m Value, &'m Value)> {
    map.iter().find(|(k, _)| scalar_text(k).as_deref() == Some(key))
}

fn plan_set(outline: &Outline<'_>, path: &[String], value: &Value) -> Result<Plan, SpliceError> {
    let mut scope = outline.top();
    for depth in 0..path.len() {
        let here = &path[..=depth];
        let rest = &path[depth + 1..];
        let found = outline
            .find(&scope, &path[depth])
            .map_err(|e| not_a_map(outline, &path[..depth], e))?;
        let Some(line) = found else {
            return plan_insert(outline, &scope, here, &nest(rest, value));
        };
        if rest.is_empty() {
            return plan_replace(outline, line, here, value);
        }
        if outline.lines[line].entry.as_ref().is_some_and(|e| e.anchored) {
            return Err(refuse(
                here,
                "carries an anchor (&name) other keys may share; change it by hand",
            ));
        }
        match outline.shape(line) {
            Shape::BlockMap { .. } => {
                scope = outline
                    .child_scope(line)
                    .ok_or_else(|| refuse(here, "its map could not be followed"))?;
            }
            Shape::Empty => return plan_replace(outline, line, here, &nest(rest, value)),
            Shape::Inline(Inline::Flow | Inline::Scalar) => {
                let mut current = node_value(outline.text, here)?;
                return match current {
                    Value::Null => plan_replace(outline, line, here, &nest(rest, value)),
                    Value::Mapping(_) => {
                        set_value(&mut current, rest, rest, value.clone())?;
                        plan_replace(outline, line, here, &current)
                    }
                    other => Err(refuse(here, format!("holds {}, not a map", describe(&other)))),
                };
            }
            Shape::Inline(Inline::Alias) => {
                return Err(refuse(
                    here,
                    "is an alias (*name) of another key; change the anchored key instead",
                ));
            }
            Shape::Inline(Inline::BlockScalar | Inline::Nothing) => return Err(refuse(here, "holds text, not a map")),
            Shape::BlockSeq { .. } => return Err(refuse(here, "is a list, not a map")),
        }
    }
    Err(refuse(path, "an edit needs a key"))
}

fn plan_remove(outline: &Outline<'_>, path: &[String]) -> Result<Plan, SpliceError> {
    let mut scope = outline.top();
    for depth in 0..path.len() {
        let here = &path[..=depth];
        let rest = &path[depth + 1..];
        let found = outline
            .find(&scope, &path[depth])
            .map_err(|e| not_a_map(outline, &path[..depth], e))?;
        let Some(line) = found else { return Ok(Plan::Nothing) };
        let anchored = outline.lines[line].entry.as_ref().is_some_and(|e| e.anchored);
        if rest.is_empty() {
            if anchored {
                return Err(refuse(
                    here,
                    "carries an anchor (&name) other keys may share; remove it by hand",
                ));
            }
            let siblings = outline
                .entries(&scope)
                .map_err(|e| not_a_map(outline, &path[..depth], e))?;
            if depth > 0 && siblings.len() == 1 {
                // The parent map would be left with no entries: write it as `{}`.
                return Ok(Plan::Then(vec![Edit::Set {
                    path: path[..depth].to_vec(),
                    value: Value::Mapping(Mapping::new()),
                }]));
            }
            return Ok(splice_lines(outline, line..outline.extent_end(line), Vec::new()));
        }
        if anchored {
            return Err(refuse(
                here,
                "carries an anchor (&name) other keys may share; change it by hand",
            ));
        }
        match outline.shape(line) {
            Shape::BlockMap { .. } => {
                scope = outline
                    .child_scope(line)
                    .ok_or_else(|| refuse(here, "its map could not be followed"))?;
            }
            Shape::Inline(Inline::Flow | Inline::Scalar) => {
                let mut current = node_value(outline.text, here)?;
                if matches!(current, Value::Mapping(_)) && remove_value(&mut current, rest) {
                    return plan_replace(outline, line, here, &current);
                }
                return Ok(Plan::Nothing);
            }
            Shape::Inline(Inline::Alias) => {
                return Err(refuse(
                    here,
                    "is an alias (*name) of another key; change the anchored key instead",
                ));
            }
            _ => return Ok(Plan::Nothing),
        }
    }
    Err(refuse(path, "an edit needs a key"))
}

/// A new entry `path.last(): value` at the end of `scope`.
fn plan_insert(outline: &Outline<'_>, scope: &Scope, path: &[String], value: &Value) -> Result<Plan, SpliceError> {
    let key = path.last().cloned().unwrap_or_default();
    let indent = scope.indent.unwrap_or(0);
    let key_text = emit::key_text(&Value::String(key)).map_err(|e| refuse(path, e.0))?;
    let lines = emit::entry_lines(&key_text, value, indent, outline.indent_step()).map_err(|e| refuse(path, e.0))?;
    let entries = outline
        .entries(scope)
        .map_err(|e| not_a_map(outline, &path[..path.len() - 1], e))?;
    let at = match entries.last() {
        Some(&last) => outline.lines[outline.extent_end(last) - 1].next,
        None => outline.text.len(),
    };
    let nl = outline.newline();
    let mut text = String::new();
    if at > 0 && !outline.text[..at].ends_with('\n') {
        text.push_str(nl);
    }
    text.push_str(&lines.join(nl));
    text.push_str(nl);
    Ok(Plan::Splice { range: at..at, text })
}

/// Replaces the value of the entry at `line` (whose key path is `path`) with `value`.
fn plan_replace(outline: &Outline<'_>, line: usize, path: &[String], value: &Value) -> Result<Plan, SpliceError> {
    let l = &outline.lines[line];
    let Some(entry) = &l.entry else {
        return Err(refuse(path, "is not a `key: value` line"));
    };
    if node_value(outline.text, path)? == *value {
        // Keep the text exactly as written.
        return Ok(Plan::Nothing);
    }
    if entry.anchored {
        return Err(refuse(
            path,
            "carries an anchor (&name) other keys may share; change it by hand",
        ));
    }
    let shape = outline.shape(line);
    if let (Shape::BlockMap { .. }, Value::Mapping(new)) = (shape, value)
        && !new.is_empty()
    {
        // Map onto map: edit entry by entry, so comments and untouched entries stay as they are.
        let child = outline
            .child_scope(line)
            .ok_or_else(|| refuse(path, "its map could not be followed"))?;
        let mut edits = Vec::new();
        for existing in outline.entries(&child).map_err(|e| not_a_map(outline, path, e))? {
            let key = entry_key(outline, existing);
            if lookup(new, &key).is_none() {
                edits.push(Edit::Remove {
                    path: child_path(path, key),
                });
            }
        }
        for (k, v) in new {
            let key = scalar_text(k).ok_or_else(|| refuse(path, format!("keys must be text, got {}", describe(k))))?;
            edits.push(Edit::Set {
                path: child_path(path, key),
                value: v.clone(),
            });
        }
        return Ok(Plan::Then(edits));
    }
    if let (Shape::BlockSeq { item_indent }, Value::Sequence(items)) = (shape, value)
        && !items.is_empty()
        && let Some(plan) = plan_block_list(outline, line, path, item_indent, items)?
    {
        return Ok(plan);
    }

    let old = &outline.text[entry.value.clone()];
    let style = match shape {
        Shape::Inline(Inline::Flow) if !is_empty_flow(old) => Style::Flow,
        Shape::BlockMap { .. } | Shape::BlockSeq { .. } => Style::Block,
        _ => Style::Default,
    };
    let step = outline.indent_step();
    let indent = match (shape, value) {
        (Shape::BlockSeq { item_indent }, Value::Sequence(_)) => item_indent,
        (Shape::BlockMap { child_indent }, _) => child_indent,
        _ => l.indent + step,
    };
    let rendered = emit::value(value, style, indent, step).map_err(|e| refuse(path, e.0))?;
    let head = &outline.text[l.start..entry.colon_end];
    let tail = match entry.comment {
        Some(_) if entry.value.is_empty() => &outline.text[entry.colon_end..l.end],
        Some(_) => &outline.text[entry.value.end..l.end],
        None => "",
    };
    let mut lines = Vec::new();
    match rendered {
        Rendered::Inline(text) => {
            let sep = if entry.value.is_empty() {
                " "
            } else {
                &outline.text[entry.colon_end..entry.value.start]
            };
            lines.push(format!("{head}{sep}{text}{tail}"));
        }
        Rendered::Block { header, lines: below } => {
            lines.push(format!("{head}{header}{tail}"));
            lines.extend(below);
        }
    }
    Ok(splice_lines(outline, line..outline.extent_end(line), lines))
}

/// A block list onto a list: items equal to old ones (in order) keep their lines, comments included;
/// the others are removed or written new. `None` when the list's lines cannot be matched to its items.
fn plan_block_list(
    outline: &Outline<'_>,
    line: usize,
    path: &[String],
    item_indent: usize,
    items: &[Value],
) -> Result<Option<Plan>, SpliceError> {
    let lines = &outline.lines;
    let end = outline.extent_end(line);
    let starts: Vec<usize> = (line + 1..end)
        .filter(|&i| lines[i].kind == LineKind::Content && lines[i].indent == item_indent && lines[i].dashes > 0)
        .collect();
    let Value::Sequence(old_items) = node_value(outline.text, path)? else {
        return Ok(None);
    };
    if old_items.len() != starts.len() || starts.is_empty() {
        return Ok(None);
    }
    // Item k owns its leading comments and blank lines, its own line, and its nested lines.
    let mut blocks = Vec::with_capacity(starts.len());
    let mut block_start = line + 1;
    for (k, &start) in starts.iter().enumerate() {
        let limit = starts.get(k + 1).copied().unwrap_or(end);
        let own_end = (start..limit)
            .rev()
            .find(|&i| matches!(lines[i].kind, LineKind::Content | LineKind::Continuation))
            .map_or(start + 1, |i| i + 1);
        blocks.push(block_start..own_end);
        block_start = own_end;
    }
    let nl = outline.newline();
    let step = outline.indent_step();
    let mut text = String::new();
    let mut next_old = 0;
    for item in items {
        match (next_old..old_items.len()).find(|&k| old_items[k] == *item) {
            Some(k) => {
                let block = &blocks[k];
                text.push_str(&outline.text[lines[block.start].start..lines[block.end - 1].next]);
                if !text.ends_with('\n') {
                    text.push_str(nl);
                }
                next_old = k + 1;
            }
            None => {
                let new_lines =
                    emit::seq_lines(std::slice::from_ref(item), item_indent, step).map_err(|e| refuse(path, e.0))?;
                text.push_str(&new_lines.join(nl));
                text.push_str(nl);
            }
        }
    }
    let region = lines[line + 1].start..lines[end - 1].next;
    if lines[end - 1].next == lines[end - 1].end && text.ends_with(nl) {
        text.truncate(text.len() - nl.len());
    }
    Ok(Some(Plan::Splice { range: region, text }))
}

fn is_empty_flow(text: &str) -> bool {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    compact == "[]" || compact == "{}"
}

/// Replaces whole lines `range` with `lines` (none = delete them).
fn splice_lines(outline: &Outline<'_>, range: Range<usize>, lines: Vec<String>) -> Plan {
    let first = &outline.lines[range.start];
    let last = &outline.lines[range.end - 1];
    let mut text = lines.join(outline.newline());
    if !lines.is_empty() && last.next > last.end {
        text.push_str(outline.newline());
    }
    Plan::Splice {
        range: first.start..last.next,
        text,
    }
}

/// Sets `value` at `rest` under `node`, creating maps for missing keys (and for null values).
fn set_value(node: &mut Value, rest: &[String], full: &[String], value: Value) -> Result<(), SpliceError> {
    let Some((key, deeper)) = rest.split_first() else {
        *node = value;
        return Ok(());
    };
    if node.is_null() {
        *node = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(map) = node else {
        let at = &full[..full.len() - rest.len()];
        return Err(refuse(at, format!("holds {}, not a map", describe(node))));
    };
    let existing = lookup(map, key).map(|(k, _)| k.clone());
    let slot = match existing {
        Some(k) => map.get_mut(&k),
        None => {
            map.insert(Value::String(key.clone()), Value::Null);
            map.get_mut(key.as_str())
        }
    };
    match slot {
        Some(slot) => set_value(slot, deeper, full, value),
        None => Err(refuse(full, "could not be set")),
    }
}

/// Removes `rest` under `node`; whether anything was removed.
fn remove_value(node: &mut Value, rest: &[String]) -> bool {
    let Some((key, deeper)) = rest.split_first() else {
        return false;
    };
    let Value::Mapping(map) = node else { return false };
    let Some(k) = lookup(map, key).map(|(k, _)| k.clone()) else {
        return false;
    };
    if deeper.is_empty() {
        map.shift_remove(&k).is_some()
    } else {
        map.get_mut(&k).is_some_and(|child| remove_value(child, deeper))
    }
}
