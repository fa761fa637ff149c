//! Reading WORKFLOW.md into a typed [`Workflow`]: splitting the front matter from the prompt, parsing
//! the YAML, expanding `$VAR` scalars and `~` in local paths, checking every key's type and range,
//! and reporting what is wrong with the file, the line, the column and the dotted key.
//!
//! The front matter is parsed into a `yaml_serde::Value` tree (YAML syntax errors carry their
//! location), then read key by key with typed accessors ([`reader`]) rather than through
//! `#[derive(Deserialize)]`: serde's errors on a value tree carry neither the key path nor a location,
//! and every message here has to name both.

use std::path::{Component, Path, PathBuf};

use yaml_serde::Value;

use super::front_matter::{self, SplitError};
use super::outline::Outline;
use super::template::PromptTemplate;
use super::{Workflow, content_hash};

pub(crate) mod reader;

use reader::Reader;

/// A place in WORKFLOW.md, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

fn at(location: &Option<Location>) -> String {
    location.map(|l| format!(":{l}")).unwrap_or_default()
}

/// Why WORKFLOW.md could not be loaded. Every message starts with `file[:line:column]: ` and, for a
/// bad setting, the dotted key (`agent.max_turns: expected a non-negative integer, got "ten"`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: workflow file not found (pass --workflow PATH or create WORKFLOW.md)", path.display())]
    Missing { path: PathBuf },
    #[error("{}: cannot read the workflow file: {message}", path.display())]
    Unreadable { path: PathBuf, message: String },
    #[error(
        "{}:1:1: front matter is required: the file must start with a `---` line, then the YAML settings, \
         a closing `---` line, and then the prompt template",
        path.display()
    )]
    NoFrontMatter { path: PathBuf },
    #[error(
        "{}:1:1: the front matter opened by the first `---` line is never closed: add a `---` line after the settings",
        path.display()
    )]
    UnclosedFrontMatter { path: PathBuf },
    #[error("{}{}: invalid YAML in the front matter: {message}", path.display(), at(location))]
    Yaml {
        path: PathBuf,
        location: Option<Location>,
        message: String,
    },
    #[error("{}{}: the front matter must be a map of settings (`key: value` lines), got {found}", path.display(), at(location))]
    NotAMap {
        path: PathBuf,
        location: Option<Location>,
        found: String,
    },
    #[error(
        "{}{}: tracker.kind: unsupported tracker {kind:?} (expected local, memory, linear or github)",
        path.display(),
        at(location)
    )]
    UnsupportedTracker {
        path: PathBuf,
        location: Option<Location>,
        kind: String,
    },
    #[error("{}{}: {key}: {message}", path.display(), at(location))]
    InvalidValue {
        path: PathBuf,
        location: Option<Location>,
        /// Dotted key, e.g. `agent.max_turns` or `agent.ssh_hosts[2]`.
        key: String,
        message: String,
    },
    #[error("{}{}: tracker.api_key: {}", path.display(), at(location), missing_key_message(tracker, env_var, *referenced))]
    MissingApiKey {
        path: PathBuf,
        location: Option<Location>,
        /// `linear` or `github`.
        tracker: String,
        /// The environment variable that should hold the key.
        env_var: String,
        /// The file names the variable (`api_key: $VAR`) and it is empty or unset.
        referenced: bool,
    },
    #[error("{}{}: {key}: invalid Liquid template: {message}", path.display(), at(location))]
    Template {
        path: PathBuf,
        location: Option<Location>,
        /// `prompt` for the body, or `agent.profiles.<name>.prompt`.
        key: String,
        message: String,
    },
}

fn missing_key_message(tracker: &str, env_var: &str, referenced: bool) -> String {
    if referenced {
        format!("the {tracker} tracker needs an API key, but ${env_var} (named by the file) is empty or unset")
    } else {
        format!(
            "the {tracker} tracker needs an API key: write `api_key: ${env_var}` under `tracker:` and set \
             {env_var} in the environment"
        )
    }
}

impl ConfigError {
    /// The workflow file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::Missing { path }
            | ConfigError::Unreadable { path, .. }
            | ConfigError::NoFrontMatter { path }
            | ConfigError::UnclosedFrontMatter { path }
            | ConfigError::Yaml { path, .. }
            | ConfigError::NotAMap { path, .. }
            | ConfigError::UnsupportedTracker { path, .. }
            | ConfigError::InvalidValue { path, .. }
            | ConfigError::MissingApiKey { path, .. }
            | ConfigError::Template { path, .. } => path,
        }
    }

    /// Line and column in the file, where known.
    pub fn location(&self) -> Option<Location> {
        match self {
            ConfigError::Missing { .. } | ConfigError::Unreadable { .. } => None,
            ConfigError::NoFrontMatter { .. } | ConfigError::UnclosedFrontMatter { .. } => {
                Some(Location { line: 1, column: 1 })
            }
            ConfigError::Yaml { location, .. }
            | ConfigError::NotAMap { location, .. }
            | ConfigError::UnsupportedTracker { location, .. }
            | ConfigError::InvalidValue { location, .. }
            | ConfigError::MissingApiKey { location, .. }
            | ConfigError::Template { location, .. } => *location,
        }
    }

    /// The dotted key the error is about, where there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnsupportedTracker { .. } => Some("tracker.kind"),
            ConfigError::MissingApiKey { .. } => Some("tracker.api_key"),
            ConfigError::InvalidValue { key, .. } | ConfigError::Template { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Reads and parses the workflow file at `path` (made absolute against the current directory),
/// resolving `$VAR` scalars from the process environment.
pub fn load_workflow(path: &Path) -> Result<Workflow, ConfigError> {
    let path = absolute(path);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ConfigError::Missing { path }),
        Err(e) => {
            return Err(ConfigError::Unreadable {
                path,
                message: e.to_string(),
            });
        }
    };
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::Unreadable {
        path: path.clone(),
        message: format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })?;
    parse_workflow(&path, &text, &|name| std::env::var(name).ok())
}

/// Parses workflow text as if read from `path` (relative paths in the file resolve against its folder);
/// `env` resolves `$VAR` scalars and `HOME` for `~`.
pub fn parse_workflow(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Workflow, ConfigError> {
    parse_workflow_checking(path, text, env, BodyCheck::Parse)
}

/// Whether [`parse_workflow_checking`] parses the prompt body as a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyCheck {
    Parse,
    /// The body is byte-identical to one that already passed (the editor's second parse); parsing a
    /// long template is the slowest part of a load.
    KnownGood,
}

pub(crate) fn parse_workflow_checking(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    body_check: BodyCheck,
) -> Result<Workflow, ConfigError> {
    let path = absolute(path);
    let fm = front_matter::split(text).map_err(|e| match e {
        SplitError::Missing => ConfigError::NoFrontMatter { path: path.clone() },
        SplitError::Unclosed => ConfigError::UnclosedFrontMatter { path: path.clone() },
    })?;
    let yaml = &text[fm.yaml.clone()];
    let line_offset = fm.yaml_first_line - 1;
    let root = parse_yaml(&path, yaml, line_offset)?;
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let reader = Reader {
        file: &path,
        dir: &dir,
        outline: Outline::new(yaml),
        line_offset,
        env,
    };
    let config = reader.config(&root)?;

    let body = &text[fm.body_start..];
    if body_check == BodyCheck::Parse && !body.trim().is_empty() {
        PromptTemplate::parse(body).map_err(|e| {
            let (line, column) = e.position();
            ConfigError::Template {
                path: path.clone(),
                location: line.map(|line| Location {
                    line: fm.body_first_line + line - 1,
                    column: column.unwrap_or(1),
                }),
                key: "prompt".into(),
                message: e.message().to_string(),
            }
        })?;
    }
    Ok(Workflow {
        path,
        config,
        prompt_template: body.to_string(),
        content_hash: content_hash(text.as_bytes()),
    })
}

/// Parses the front matter's YAML (merge keys applied); an empty front matter is an empty map.
fn parse_yaml(path: &Path, yaml: &str, line_offset: usize) -> Result<Value, ConfigError> {
    if yaml.trim().is_empty() {
        return Ok(Value::Mapping(yaml_serde::Mapping::new()));
    }
    let yaml_error = |e: yaml_serde::Error| ConfigError::Yaml {
        path: path.to_path_buf(),
        location: e.location().map(|l| Location {
            line: l.line() + line_offset,
            column: l.column(),
        }),
        message: shift_lines(&e.to_string(), line_offset),
    };
    let mut value: Value = yaml_serde::from_str(yaml).map_err(yaml_error)?;
    value.apply_merge().map_err(yaml_error)?;
    match value {
        Value::Mapping(map) => Ok(Value::Mapping(map)),
        Value::Null => Ok(Value::Mapping(yaml_serde::Mapping::new())),
        other => Err(ConfigError::NotAMap {
            path: path.to_path_buf(),
            location: Some(Location {
                line: line_offset + 1,
                column: 1,
            }),
            found: reader::describe(&other),
        }),
    }
}

/// Rewrites `line N column M` in a YAML error message from front-matter lines to file lines.
fn shift_lines(message: &str, offset: usize) -> String {
    let re = regex::Regex::new(r"line (\d+) column (\d+)").expect("static regex");
    let shifted = re.replace_all(message, |c: &regex::Captures<'_>| {
        let line: usize = c[1].parse().unwrap_or(0);
        format!("line {} column {}", line + offset, &c[2])
    });
    shifted.into_owned()
}

/// `path` made absolute against the current directory, without touching the file system.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    normalize(&joined)
}

/// Drops `.` components and resolves `..` lexically.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The top-level folder of the git repository holding `dir` (a folder with a `.git` entry), if any.
pub(crate) fn git_toplevel(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find(|d| d.join(".git").exists()).map(Path::to_path_buf)
}

#[cfg(test)]
mod tests;
