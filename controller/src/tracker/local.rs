//! The local tracker: one Markdown file per issue, `<issues_dir>/<identifier>.md`, with YAML front
//! matter and the comments kept at the end of the same file (format in `local/issue_file.rs`).
//!
//! People edit these files with any editor while the controller runs, so the tracker re-reads the
//! folder on every call, skips (and logs) a malformed file in lists, and reports it as an error when
//! that issue is asked for by identifier. Its own writes (state moves, comments, branch records) are
//! local edits written atomically: a temp file in the same folder, fsync, rename. Writers in this
//! process are serialised, and a file changed on disk between read and rename is re-read and the
//! edit redone, so a concurrent editor save is not lost.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::Utc;

use super::{Issue, Tracker, TrackerError};
use crate::config::TrackerConfig;

mod issue_file;
#[cfg(test)]
mod tests;

pub use issue_file::COMMENTS_MARKER;

/// The identifier prefix when `tracker.project_slug` is empty.
pub const DEFAULT_PREFIX: &str = "ITX";

/// The author written on comments the controller adds.
const AUTHOR: &str = "itervox";

/// How many times an edit is redone when the file keeps changing underneath it.
const EDIT_ATTEMPTS: usize = 5;

/// Issues as Markdown files in one folder.
#[derive(Debug)]
pub struct LocalTracker {
    dir: PathBuf,
    prefix: String,
    /// Serialises this process's writes, so two edits of one file never race each other.
    write_lock: tokio::sync::Mutex<()>,
}

/// One file of the folder, read and parsed.
struct Entry {
    path: PathBuf,
    /// The identifier the file stands for (front matter, else its stem); known even when malformed.
    identifier: String,
    parsed: Result<Issue, String>,
}

/// What a new local issue starts with (`LocalTracker::create_issue`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewIssue {
    pub title: String,
    pub state: String,
    pub description: Option<String>,
    pub labels: Vec<String>,
    pub priority: Option<i64>,
    pub blocked_by: Vec<String>,
}

impl LocalTracker {
    /// Opens the configured folder, creating it when missing. The identifier prefix is
    /// `tracker.project_slug`, or `ITX`.
    pub fn open(config: &TrackerConfig) -> Result<Self, TrackerError> {
        let prefix = config.project_slug.trim();
        Self::open_dir(
            &config.issues_dir,
            if prefix.is_empty() { DEFAULT_PREFIX } else { prefix },
        )
    }

    /// Opens `dir` with an explicit identifier prefix.
    pub fn open_dir(dir: &Path, prefix: &str) -> Result<Self, TrackerError> {
        fs::create_dir_all(dir).map_err(|e| io_error("cannot create the issues folder", dir, &e))?;
        Ok(LocalTracker {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The folder the issues live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a new issue file with the next free `<prefix>-<n>` identifier.
    pub async fn create_issue(&self, new: NewIssue) -> Result<Issue, TrackerError> {
        if new.title.trim().is_empty() || new.state.trim().is_empty() {
            return Err(TrackerError::Malformed("a new issue needs a title and a state".into()));
        }
        let _guard = self.write_lock.lock().await;
        let next = self
            .scan()?
            .iter()
            .filter_map(|e| {
                e.identifier
                    .strip_prefix(&self.prefix)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .and_then(|n| n.parse::<u64>().ok())
            })
            .max()
            .unwrap_or(0)
            + 1;
        let identifier = format!("{}-{next}", self.prefix);
        let issue = Issue {
            id: identifier.clone(),
            identifier: identifier.clone(),
            title: new.title.trim().to_string(),
            description: new.description,
            state: new.state.trim().to_string(),
            priority: new.priority,
            labels: new.labels.iter().map(|l| l.to_lowercase()).collect(),
            blocked_by: new
                .blocked_by
                .into_iter()
                .map(|b| super::Blocker {
                    id: b.clone(),
                    identifier: b,
                    state: None,
                })
                .collect(),
            created_at: Some(Utc::now()),
            ..Issue::default()
        };
        let path = self.dir.join(format!("{identifier}.md"));
        let text = issue_file::render_new(&issue);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_error("cannot create", &path, &e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error("cannot write", &path, &e))?;
        drop(file);
        self.read_entry(&path)
            .parsed
            .map_err(|e| TrackerError::Malformed(format!("{}: {e}", path.display())))
    }

    /// Every `*.md` file of the folder (hidden files skipped), in file-name order.
    fn scan(&self) -> Result<Vec<Entry>, TrackerError> {
        let read = fs::read_dir(&self.dir).map_err(|e| io_error("cannot list", &self.dir, &e))?;
        let mut paths: Vec<PathBuf> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "md")
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| !n.starts_with('.'))
                    && p.is_file()
            })
            .collect();
        paths.sort();
        Ok(paths.iter().map(|p| self.read_entry(p)).collect())
    }

    fn read_entry(&self, path: &Path) -> Entry {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let fallback = issue_file::identifier_from_stem(stem, &self.prefix);
        match fs::read_to_string(path) {
            Ok(text) => {
                let parsed = issue_file::parse(&text, stem, &self.prefix);
                Entry {
                    path: path.to_path_buf(),
                    identifier: parsed.as_ref().map(|i| i.identifier.clone()).unwrap_or(fallback),
                    parsed,
                }
            }
            Err(e) => Entry {
                path: path.to_path_buf(),
                identifier: fallback,
                parsed: Err(format!("cannot read the file: {e}")),
            },
        }
    }

    /// The file of one issue: `<identifier>.md` when it is that issue, else whichever file names it.
    fn locate(&self, identifier: &str) -> Result<Option<Entry>, TrackerError> {
        if is_safe_file_name(identifier) {
            let direct = self.dir.join(format!("{identifier}.md"));
            if direct.is_file() {
                let entry = self.read_entry(&direct);
                if entry.identifier == identifier {
                    return Ok(Some(entry));
                }
            }
        }
        Ok(self.scan()?.into_iter().find(|e| e.identifier == identifier))
    }

    /// One issue with its blockers' current states; a malformed file is an error naming it.
    fn load_one(&self, identifier: &str) -> Result<Option<Issue>, TrackerError> {
        let Some(entry) = self.locate(identifier)? else {
            return Ok(None);
        };
        let mut issue = entry.parsed.map_err(|e| malformed(&entry.path, &e))?;
        if !issue.blocked_by.is_empty() {
            let states = self.states_by_identifier()?;
            resolve_blockers(&mut issue, &states);
        }
        Ok(Some(issue))
    }

    fn states_by_identifier(&self) -> Result<HashMap<String, String>, TrackerError> {
        Ok(self
            .scan()?
            .into_iter()
            .filter_map(|e| e.parsed.ok())
            .map(|i| (i.identifier, i.state))
            .collect())
    }

    /// Every well-formed issue, blockers resolved; malformed files are logged and left out, except
    /// that one named in `must_parse` is an error.
    fn load_all(&self, must_parse: &[String]) -> Result<Vec<Issue>, TrackerError> {
        let mut issues = Vec::new();
        for entry in self.scan()? {
            match entry.parsed {
                Ok(issue) => issues.push(issue),
                Err(e) if must_parse.contains(&entry.identifier) => return Err(malformed(&entry.path, &e)),
                Err(e) => {
                    tracing::warn!(path = %entry.path.display(), error = %e, "Skipping a malformed issue file");
                }
            }
        }
        let states: HashMap<String, String> = issues.iter().map(|i| (i.identifier.clone(), i.state.clone())).collect();
        for issue in &mut issues {
            resolve_blockers(issue, &states);
        }
        Ok(issues)
    }

    /// Applies `edit` to the issue's file atomically. The edit is redone on the fresh text when the
    /// file changed while it was being written, and the result must still parse.
    async fn edit<F>(&self, identifier: &str, edit: F) -> Result<(), TrackerError>
    where
        F: Fn(&str) -> Result<String, String>,
    {
        let _guard = self.write_lock.lock().await;
        let entry = self
            .locate(identifier)?
            .ok_or_else(|| TrackerError::NotFound(identifier.to_string()))?;
        let path = entry.path;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let mut before = fs::read_to_string(&path).map_err(|e| io_error("cannot read", &path, &e))?;
        for _ in 0..EDIT_ATTEMPTS {
            issue_file::parse(&before, &stem, &self.prefix).map_err(|e| malformed(&path, &e))?;
            let after = edit(&before).map_err(|e| malformed(&path, &e))?;
            issue_file::parse(&after, &stem, &self.prefix)
                .map_err(|e| TrackerError::Io(format!("{}: the edit would break the file: {e}", path.display())))?;
            let tmp = write_temp(&path, &after)?;
            let now = fs::read_to_string(&path).map_err(|e| io_error("cannot read", &path, &e))?;
            if now != before {
                // Someone saved the file in the meantime: redo the edit on their version.
                let _ = fs::remove_file(&tmp);
                before = now;
                continue;
            }
            fs::rename(&tmp, &path).map_err(|e| {
                let _ = fs::remove_file(&tmp);
                io_error("cannot replace", &path, &e)
            })?;
            if let Some(dir) = path.parent()
                && let Ok(d) = fs::File::open(dir)
            {
                // Persist the rename itself; a failure here only weakens durability.
                let _ = d.sync_all();
            }
            return Ok(());
        }
        Err(TrackerError::Io(format!(
            "{}: the file kept changing while it was being written",
            path.display()
        )))
    }
}

/// Writes `text` to a temp file next to `path` (same permissions), fsynced; returns its path.
fn write_temp(path: &Path, text: &str) -> Result<PathBuf, TrackerError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("issue.md");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        if let Ok(meta) = fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.sync_all()
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error("cannot write a temp file for", path, &e)
    })?;
    Ok(tmp)
}

fn resolve_blockers(issue: &mut Issue, states: &HashMap<String, String>) {
    for b in &mut issue.blocked_by {
        b.state = states.get(&b.identifier).cloned();
    }
}

/// An identifier usable as a file name as it is.
fn is_safe_file_name(identifier: &str) -> bool {
    !identifier.is_empty() && !identifier.starts_with('.') && !identifier.contains(['/', '\\', '\0'])
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> TrackerError {
    TrackerError::Io(format!("{what} {}: {e}", path.display()))
}

fn malformed(path: &Path, e: &str) -> TrackerError {
    TrackerError::Malformed(format!("{}: {e}", path.display()))
}

#[async_trait]
impl Tracker for LocalTracker {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn fetch_candidates(&self, states: &[String]) -> Result<Vec<Issue>, TrackerError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .load_all(&[])?
            .into_iter()
            .filter(|i| states.iter().any(|s| s.eq_ignore_ascii_case(&i.state)))
            .collect())
    }

    async fn fetch_by_identifiers(&self, identifiers: &[String]) -> Result<Vec<Issue>, TrackerError> {
        if identifiers.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .load_all(identifiers)?
            .into_iter()
            .filter(|i| identifiers.contains(&i.identifier))
            .collect())
    }

    async fn fetch_issue(&self, identifier: &str) -> Result<Option<Issue>, TrackerError> {
        self.load_one(identifier)
    }

    async fn move_state(&self, identifier: &str, state: &str) -> Result<(), TrackerError> {
        let state = state.trim();
        if state.is_empty() || state.contains(['\n', '\r']) {
            return Err(TrackerError::UnknownState {
                identifier: identifier.to_string(),
                state: state.to_string(),
            });
        }
        self.edit(identifier, |text| issue_file::set_key(text, "state", state))
            .await
    }

    async fn add_comment(&self, identifier: &str, body: &str) -> Result<(), TrackerError> {
        let now = Utc::now();
        self.edit(identifier, |text| {
            Ok(issue_file::append_comment(text, AUTHOR, now, body))
        })
        .await
    }

    async fn record_branch(&self, identifier: &str, branch: &str) -> Result<(), TrackerError> {
        let branch = branch.trim();
        if branch.is_empty() || branch.contains(['\n', '\r']) {
            return Err(TrackerError::Malformed(format!(
                "{branch:?} is not a branch name (issue {identifier})"
            )));
        }
        if self
            .load_one(identifier)?
            .is_some_and(|i| i.branch_name.as_deref() == Some(branch))
        {
            return Ok(());
        }
        self.edit(identifier, |text| issue_file::set_key(text, "branch", branch))
            .await
    }
}
