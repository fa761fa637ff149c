//! The prompt: strict Liquid templates rendered against an issue, the built-in default prompt, and the
//! assembly of the final prompt text (agent-mode appendix, human-input appendix, extras).
//!
//! Strictness: an unknown filter or tag is a parse error, and so is a reference to an `issue` field
//! that does not exist (`issue.descripton`), with the line and column; an unknown variable in an
//! output (`{{ nope }}`) fails the render with a message naming it. Optional issue fields are present
//! as nil so `{% if issue.description %}` works.

use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use liquid::model::{Object, Value};

use super::AgentMode;
use crate::tracker::Issue;

/// The line an agent ends its final message with when it needs a human's answer to go on.
pub const NEEDS_INPUT_MARKER: &str = "<!-- itervox:needs-input -->";

/// The fields of `issue` a template may use.
pub const ISSUE_FIELDS: &[&str] = &[
    "id",
    "identifier",
    "title",
    "description",
    "state",
    "priority",
    "labels",
    "url",
    "branch_name",
    "blocked_by",
    "comments",
    "created_at",
    "updated_at",
];

/// Why a prompt template could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template text is not valid (strict) Liquid; line and column are 1-based within the template.
    #[error("{}{message}", parse_at(*line, *column))]
    Parse {
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// Rendering failed, e.g. an unknown variable.
    #[error("cannot render the prompt: {message}")]
    Render { message: String },
}

fn parse_at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

impl TemplateError {
    /// Line and column within the template, where known.
    pub fn position(&self) -> (Option<usize>, Option<usize>) {
        match self {
            TemplateError::Parse { line, column, .. } => (*line, *column),
            TemplateError::Render { .. } => (None, None),
        }
    }

    /// The message without its position.
    pub fn message(&self) -> &str {
        match self {
            TemplateError::Parse { message, .. } | TemplateError::Render { message } => message,
        }
    }
}

/// A parsed, strict Liquid prompt template.
pub struct PromptTemplate {
    template: liquid::Template,
    source: String,
}

impl std::fmt::Debug for PromptTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptTemplate").field("source", &self.source).finish()
    }
}

fn parser() -> Result<&'static liquid::Parser, TemplateError> {
    static PARSER: OnceLock<Result<liquid::Parser, String>> = OnceLock::new();
    PARSER
        .get_or_init(|| liquid::ParserBuilder::with_stdlib().build().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| TemplateError::Parse {
            line: None,
            column: None,
            message: format!("the Liquid parser could not be built: {e}"),
        })
}

impl PromptTemplate {
    /// Parses `source`; unknown filters, tags and `issue` fields are errors with their position.
    pub fn parse(source: &str) -> Result<PromptTemplate, TemplateError> {
        check_issue_fields(source)?;
        let template = parser()?.parse(source).map_err(|e| parse_error(source, &e))?;
        Ok(PromptTemplate {
            template,
            source: source.to_string(),
        })
    }

    /// The template for a workflow body: the body itself, or [`default_prompt`] when it is blank.
    pub fn for_body(body: &str) -> Result<PromptTemplate, TemplateError> {
        if body.trim().is_empty() {
            PromptTemplate::parse(default_prompt())
        } else {
            PromptTemplate::parse(body)
        }
    }

    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the template for `issue`; `attempt` is `None` on the first run.
    pub fn render(&self, issue: &Issue, attempt: Option<u32>) -> Result<String, TemplateError> {
        let mut globals = Object::new();
        globals.insert("issue".into(), Value::Object(issue_object(issue)));
        globals.insert(
            "attempt".into(),
            attempt.map_or(Value::Nil, |a| Value::scalar(i64::from(a))),
        );
        self.template.render(&globals).map_err(|e| render_error(&e))
    }
}

/// The short prompt used when WORKFLOW.md's body is blank.
pub fn default_prompt() -> &'static str {
    "You are working on issue {{ issue.identifier }}: {{ issue.title }}\n\
     {% if issue.description %}\n{{ issue.description }}\n{% endif %}\n\
     Make the change the issue asks for in this repository, test it, and commit your work on the current branch.\n"
}

fn opt_text(s: Option<&str>) -> Value {
    match s {
        Some(s) if !s.is_empty() => Value::scalar(s.to_string()),
        _ => Value::Nil,
    }
}

fn timestamp(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Nil, |t| {
        Value::scalar(t.to_rfc3339_opts(SecondsFormat::Secs, true))
    })
}

fn issue_object(issue: &Issue) -> Object {
    let mut o = Object::new();
    o.insert("id".into(), Value::scalar(issue.id.clone()));
    o.insert("identifier".into(), Value::scalar(issue.identifier.clone()));
    o.insert("title".into(), Value::scalar(issue.title.clone()));
    o.insert("description".into(), opt_text(issue.description.as_deref()));
    o.insert("state".into(), Value::scalar(issue.state.clone()));
    o.insert("priority".into(), issue.priority.map_or(Value::Nil, Value::scalar));
    o.insert(
        "labels".into(),
        Value::Array(issue.labels.iter().map(|l| Value::scalar(l.clone())).collect()),
    );
    o.insert("url".into(), opt_text(issue.url.as_deref()));
    o.insert("branch_name".into(), opt_text(issue.branch_name.as_deref()));
    let blockers = issue
        .blocked_by
        .iter()
        .map(|b| {
            let mut m = Object::new();
            m.insert("id".into(), Value::scalar(b.id.clone()));
            m.insert("identifier".into(), Value::scalar(b.identifier.clone()));
            m.insert("state".into(), opt_text(b.state.as_deref()));
            Value::Object(m)
        })
        .collect();
    o.insert("blocked_by".into(), Value::Array(blockers));
    let comments = issue
        .comments
        .iter()
        .map(|c| {
            let mut m = Object::new();
            m.insert("author".into(), Value::scalar(c.author.clone()));
            m.insert("body".into(), Value::scalar(c.body.clone()));
            m.insert("created_at".into(), timestamp(c.created_at));
            Value::Object(m)
        })
        .collect();
    o.insert("comments".into(), Value::Array(comments));
    o.insert("created_at".into(), timestamp(issue.created_at));
    o.insert("updated_at".into(), timestamp(issue.updated_at));
    o
}

/// The byte ranges of the insides of `{{ }}` and `{% %}` tags, skipping `raw` and `comment` blocks.
fn tag_regions(source: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut skip_until: Option<&str> = None;
    while let Some(off) = source[pos..].find('{') {
        let start = pos + off;
        let close = match source.as_bytes().get(start + 1) {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            _ => {
                pos = start + 1;
                continue;
            }
        };
        let inner_start = start + 2;
        let Some(len) = source[inner_start..].find(close) else {
            break;
        };
        let inner = inner_start..inner_start + len;
        pos = inner.end + 2;
        let words: Vec<&str> = source[inner.clone()].trim_matches('-').split_whitespace().collect();
        if let Some(end_tag) = skip_until {
            if close == "%}" && words.first() == Some(&end_tag) {
                skip_until = None;
            }
            continue;
        }
        if close == "%}" {
            match words.first() {
                Some(&"raw") => skip_until = Some("endraw"),
                Some(&"comment") => skip_until = Some("endcomment"),
                _ => {}
            }
        }
        out.push(inner);
    }
    out
}

fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// Refuses references to `issue` fields that do not exist.
fn check_issue_fields(source: &str) -> Result<(), TemplateError> {
    static FIELD: OnceLock<regex::Regex> = OnceLock::new();
    let re = FIELD.get_or_init(|| regex::Regex::new(r"\bissue\.([A-Za-z_][A-Za-z0-9_]*)").expect("static regex"));
    for region in tag_regions(source) {
        for cap in re.captures_iter(&source[region.clone()]) {
            let whole = cap.get(0).expect("match");
            let field = &cap[1];
            if !ISSUE_FIELDS.contains(&field) {
                let (line, col) = line_col(source, region.start + whole.start());
                return Err(TemplateError::Parse {
                    line: Some(line),
                    column: Some(col),
                    message: format!(
                        "unknown variable `issue.{field}` (issue has: {})",
                        ISSUE_FIELDS.join(", ")
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The `key=value` lines of a liquid error's `with:` section.
fn error_details(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.trim().split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn detail<'a>(details: &'a [(String, String)], key: &str) -> Option<&'a str> {
    details.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn parse_error(source: &str, err: &liquid::Error) -> TemplateError {
    let text = err.to_string();
    let text = text.strip_prefix("liquid: ").unwrap_or(&text).to_string();
    let details = error_details(&text);
    let mut position = regex::Regex::new(r"-->\s*(\d+):(\d+)")
        .expect("static regex")
        .captures(&text)
        .map(|c| (c[1].parse().unwrap_or(1), c[2].parse().unwrap_or(1)));
    let headline = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("= "))
        .or_else(|| text.lines().next())
        .unwrap_or("invalid template")
        .trim()
        .trim_end_matches('.')
        .to_string();
    let message = if headline.eq_ignore_ascii_case("unknown filter") {
        let name = detail(&details, "requested filter").unwrap_or("?");
        if position.is_none() {
            position = find_filter(source, name);
        }
        format!("unknown filter `{name}`")
    } else if headline.eq_ignore_ascii_case("unknown tag") {
        format!("unknown tag `{}`", detail(&details, "requested").unwrap_or("?"))
    } else {
        let mut m = lower_first(&headline);
        for (k, v) in &details {
            if !k.starts_with("available") {
                m.push_str(&format!(" ({k}: {v})"));
            }
        }
        m
    };
    TemplateError::Parse {
        line: position.map(|p| p.0),
        column: position.map(|p| p.1),
        message,
    }
}

/// Where `| name` is used in a tag.
fn find_filter(source: &str, name: &str) -> Option<(usize, usize)> {
    let re = regex::Regex::new(&format!(r"\|\s*{}\b", regex::escape(name))).ok()?;
    tag_regions(source).into_iter().find_map(|region| {
        re.find(&source[region.clone()])
            .map(|m| line_col(source, region.start + m.start()))
    })
}

fn render_error(err: &liquid::Error) -> TemplateError {
    let text = err.to_string();
    let text = text.strip_prefix("liquid: ").unwrap_or(&text);
    let details = error_details(text);
    let headline = text.lines().next().unwrap_or("").trim();
    let message = if headline.eq_ignore_ascii_case("unknown variable") {
        format!(
            "unknown variable `{}`",
            detail(&details, "requested variable").unwrap_or("?")
        )
    } else if headline.eq_ignore_ascii_case("unknown index") {
        let base = detail(&details, "variable").unwrap_or("?");
        let index = detail(&details, "requested index").unwrap_or("?");
        match detail(&details, "available indexes").filter(|a| !a.is_empty()) {
            Some(available) => format!("unknown variable `{base}.{index}` ({base} has: {available})"),
            None => format!("unknown variable `{base}.{index}`"),
        }
    } else {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    TemplateError::Render { message }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A question the agent asked earlier and the human's answer, added to a resumed run's prompt.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HumanReply {
    /// The agent's question, when known.
    pub question: Option<String>,
    pub reply: String,
}

/// Text added to the rendered prompt beyond the mode and human-input appendices.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PromptExtras {
    /// The human's answer to the agent's last question (input-required resume on a fresh session).
    pub human_reply: Option<HumanReply>,
    /// Further sections, appended as written, in order.
    pub sections: Vec<String>,
}

/// Subagents mode: the agent splits independent parts of the work across subagents it starts with
/// its Task tool, gives each a self-contained brief, and integrates and checks their results itself.
pub const SUBAGENTS_APPENDIX: &str = "\
## Working with subagents

When this task has parts that do not depend on each other (separate modules, tests for different \
areas, research of several options), hand each such part to a subagent with the Task tool so they \
run in parallel. Give every subagent a self-contained brief: the goal, the files involved, the \
constraints, and what to report back. Keep the parts that need the whole picture (design decisions, \
integration, the final review) for yourself. When the subagents are done, read their results, \
integrate them, run the tests, and make sure the combined change is consistent before you finish.";

/// Teams mode: the agent leads a roster of roles, each run as a subagent with the Task tool: an
/// architect who plans, implementers who build the planned parts, a tester who writes and runs the
/// tests, and a reviewer who checks the combined change; the lead coordinates and decides.
pub const TEAMS_APPENDIX: &str = "\
## Working as a team

You lead a small team. Run each role as a subagent with the Task tool, give it a clear brief, and \
coordinate their work:

- **Architect**: reads the issue and the code, proposes the plan: the parts of the change, their \
interfaces, and the order to build them in.
- **Implementers** (one per independent part): build their part of the plan, with tests, and report \
what they changed.
- **Tester**: writes the missing tests for the combined change, runs the whole test suite, and \
reports failures with their causes.
- **Reviewer**: reads the full diff for correctness, edge cases and consistency with the codebase, \
and lists what must change.

You decide between the roles' proposals, send work back when the tester or reviewer finds problems, \
and finish only when the tests pass and the reviewer's findings are resolved.";

/// Teaches the agent how to ask a human a question.
pub fn human_input_appendix() -> String {
    format!(
        "## When you need a human\n\n\
         If you cannot go on without an answer from a person (a decision only they can make, access \
         you do not have, information that is nowhere in the repository or the issue), stop and ask: \
         put your question, with the options you see, in your final message, and end that message with \
         this line on its own:\n\n\
         {NEEDS_INPUT_MARKER}\n\n\
         Use that line only when you truly need an answer; do not use it when you have finished the work."
    )
}

/// The final prompt: the rendered `body`, the appendix of the agent mode (none for solo), the
/// extras, and the human-input appendix, separated by blank lines.
pub fn assemble_prompt(body: &str, mode: AgentMode, extras: &PromptExtras) -> String {
    let mut parts: Vec<String> = vec![body.trim_end().to_string()];
    match mode {
        AgentMode::Solo => {}
        AgentMode::Subagents => parts.push(SUBAGENTS_APPENDIX.to_string()),
        AgentMode::Teams => parts.push(TEAMS_APPENDIX.to_string()),
    }
    for section in &extras.sections {
        if !section.trim().is_empty() {
            parts.push(section.trim_end().to_string());
        }
    }
    if let Some(reply) = &extras.human_reply {
        let mut text = String::from("## Answer from a human\n\n");
        if let Some(question) = reply.question.as_deref().filter(|q| !q.trim().is_empty()) {
            text.push_str("You asked:\n\n");
            for line in question.trim_end().lines() {
                text.push_str("> ");
                text.push_str(line);
                text.push('\n');
            }
            text.push_str("\nThe answer:\n\n");
        }
        text.push_str(reply.reply.trim_end());
        parts.push(text);
    }
    parts.push(human_input_appendix());
    parts.retain(|p| !p.is_empty());
    let mut out = parts.join("\n\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests;
