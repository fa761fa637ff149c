//! Where everything lives under the workspace root: worktrees, mirrors, session folders, agent logs,
//! workspace records and locks.
//!
//! ```text
//! <root>/<sanitised issue>/                      the issue's worktree
//! <root>/.itervox/mirrors/<name>-<hash>.git      bare mirror of a repository
//! <root>/.itervox/sessions/<sessionId>/          a session: spec, state, journal, exit
//! <root>/.itervox/logs/<sanitised issue>/        the agent's own logs for the issue
//! <root>/.itervox/workspaces/<sanitised>.json    what `prepare_workspace` created
//! <root>/.itervox/locks/                         per-issue locks
//! ```

use std::path::{Path, PathBuf};

use crate::identifier::sanitise_identifier;

/// Why the workspace root could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("the workspace root {raw:?} starts with ~ but HOME is not set on this host")]
    NoHome { raw: String },
    #[error("the workspace root is empty")]
    Empty,
    #[error("cannot create or open the workspace root {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The resolved workspace root of this host and the paths derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

/// Expands a configured root: `~` and `~/…` use `home`; a relative path is taken relative to `home` too
/// (so the result does not depend on the worker's working directory). Pure.
pub fn expand_root(raw: &str, home: Option<&Path>) -> Result<PathBuf, LayoutError> {
    let raw_trimmed = raw.trim();
    if raw_trimmed.is_empty() {
        return Err(LayoutError::Empty);
    }
    let no_home = || LayoutError::NoHome { raw: raw.to_string() };
    if raw_trimmed == "~" {
        return home.map(Path::to_path_buf).ok_or_else(no_home);
    }
    if let Some(rest) = raw_trimmed.strip_prefix("~/") {
        return Ok(home.ok_or_else(no_home)?.join(rest));
    }
    let path = PathBuf::from(raw_trimmed);
    if path.is_absolute() {
        Ok(path)
    } else {
        Ok(home.ok_or_else(no_home)?.join(path))
    }
}

impl Layout {
    /// Expands `raw`, creates the root and its `.itervox` folders, and canonicalises the root (so later
    /// containment checks compare real paths).
    pub fn open(raw: &str, home: Option<&Path>) -> Result<Layout, LayoutError> {
        let expanded = expand_root(raw, home)?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LayoutError::Io { path, source }
        };
        fs_err::create_dir_all(&expanded).map_err(io(&expanded))?;
        let root = fs_err::canonicalize(&expanded).map_err(io(&expanded))?;
        let layout = Layout { root };
        for dir in [
            layout.sessions_dir(),
            layout.mirrors_dir(),
            layout.logs_root(),
            layout.records_dir(),
            layout.locks_dir(),
        ] {
            fs_err::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(layout)
    }

    /// The layout of an already canonical root (no I/O).
    pub fn from_canonical_root(root: PathBuf) -> Layout {
        Layout { root }
    }

    /// The layout a session folder belongs to: `<root>/.itervox/sessions/<id>` → `<root>`.
    pub fn of_session_dir(dir: &Path) -> Option<Layout> {
        let sessions = dir.parent()?;
        let itervox = sessions.parent()?;
        if sessions.file_name()? != "sessions" || itervox.file_name()? != ".itervox" {
            return None;
        }
        Some(Layout {
            root: itervox.parent()?.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn itervox_dir(&self) -> PathBuf {
        self.root.join(".itervox")
    }

    pub fn sessions_dir(&self) -> PathBuf {
        self.itervox_dir().join("sessions")
    }

    /// The folder of one session (the id must have been validated).
    pub fn session_dir(&self, session_id: &str) -> PathBuf {
        self.sessions_dir().join(session_id)
    }

    pub fn mirrors_dir(&self) -> PathBuf {
        self.itervox_dir().join("mirrors")
    }

    fn logs_root(&self) -> PathBuf {
        self.itervox_dir().join("logs")
    }

    /// The per-issue folder for the agent's own logs (`CLAUDE_CODE_LOG_DIR`).
    pub fn agent_log_dir(&self, issue: &str) -> PathBuf {
        self.logs_root().join(sanitise_identifier(issue))
    }

    /// The worktree of an issue.
    pub fn workspace_dir(&self, issue: &str) -> PathBuf {
        self.root.join(sanitise_identifier(issue))
    }

    pub fn records_dir(&self) -> PathBuf {
        self.itervox_dir().join("workspaces")
    }

    /// The record `prepare_workspace` writes for an issue's worktree.
    pub fn workspace_record(&self, issue: &str) -> PathBuf {
        self.records_dir().join(format!("{}.json", sanitise_identifier(issue)))
    }

    pub fn locks_dir(&self) -> PathBuf {
        self.itervox_dir().join("locks")
    }

    /// True when `path` (after resolving symlinks) is strictly inside the root. A path that does not
    /// exist is judged by its nearest existing ancestor.
    pub fn contains(&self, path: &Path) -> bool {
        let mut probe = path.to_path_buf();
        let mut tail = Vec::new();
        let resolved = loop {
            match std::fs::canonicalize(&probe) {
                Ok(real) => break real,
                Err(_) => {
                    let Some(name) = probe.file_name() else {
                        return false;
                    };
                    if name == ".." {
                        return false;
                    }
                    tail.push(name.to_os_string());
                    if !probe.pop() {
                        return false;
                    }
                }
            }
        };
        let mut full = resolved;
        for part in tail.into_iter().rev() {
            full.push(part);
        }
        full != self.root && full.starts_with(&self.root)
    }
}

#[cfg(test)]
mod tests;
