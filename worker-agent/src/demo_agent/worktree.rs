//! The demo agent's real work in its worktree, with git2: the short status, appending a note to
//! `DEMO_NOTES.md`, and committing it as "Itervox Demo Agent".

use std::path::{Path, PathBuf};

use git2::{Repository, Signature, Status, StatusOptions};

/// The file the demo agent writes.
pub const NOTES_FILE: &str = "DEMO_NOTES.md";
/// Who the demo agent commits as.
pub const AUTHOR_NAME: &str = "Itervox Demo Agent";
pub const AUTHOR_EMAIL: &str = "demo-agent@itervox.invalid";

/// Why a step of the work failed (shown as the tool call's error).
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error("{path} is not a git worktree: {source}")]
    NotARepository { path: PathBuf, source: git2::Error },
    #[error("git {step} failed: {source}")]
    Git { step: &'static str, source: git2::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The repository whose worktree is `cwd` (never one further up: the demo must not commit elsewhere).
fn open(cwd: &Path) -> Result<Repository, WorkError> {
    Repository::open(cwd).map_err(|source| WorkError::NotARepository {
        path: cwd.to_path_buf(),
        source,
    })
}

/// `git status --short` of the worktree.
pub fn short_status(cwd: &Path) -> Result<String, WorkError> {
    let repo = open(cwd)?;
    let mut options = StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true);
    let statuses = repo
        .statuses(Some(&mut options))
        .map_err(|source| WorkError::Git { step: "status", source })?;
    let mut lines = Vec::new();
    for entry in statuses.iter() {
        let s = entry.status();
        let index = if s.contains(Status::INDEX_NEW) {
            'A'
        } else if s.contains(Status::INDEX_MODIFIED) {
            'M'
        } else if s.contains(Status::INDEX_DELETED) {
            'D'
        } else {
            ' '
        };
        let tree = if s.contains(Status::WT_NEW) {
            '?'
        } else if s.contains(Status::WT_MODIFIED) {
            'M'
        } else if s.contains(Status::WT_DELETED) {
            'D'
        } else {
            ' '
        };
        let code = if tree == '?' {
            "??".to_string()
        } else {
            format!("{index}{tree}")
        };
        lines.push(format!("{code} {}", entry.path().unwrap_or("?")));
    }
    Ok(lines.join("\n"))
}

/// How the note was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteWrite {
    pub path: PathBuf,
    /// True when the file did not exist before.
    pub created: bool,
    /// The file's last line before the note (for the `Edit` call's `old_string`).
    pub previous_last_line: Option<String>,
}

/// Appends `line` to `DEMO_NOTES.md` in `cwd` (creating it with a heading).
pub fn append_note(cwd: &Path, line: &str) -> Result<NoteWrite, WorkError> {
    let path = cwd.join(NOTES_FILE);
    let existing = std::fs::read_to_string(&path).ok();
    let previous_last_line = existing
        .as_deref()
        .and_then(|t| t.lines().rev().find(|l| !l.trim().is_empty()))
        .map(str::to_string);
    let mut text = existing
        .clone()
        .unwrap_or_else(|| "# Demo notes\n\nWork recorded by the Itervox demo agent.\n\n".to_string());
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    std::fs::write(&path, text).map_err(|source| WorkError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(NoteWrite {
        path,
        created: existing.is_none(),
        previous_last_line,
    })
}

/// A commit the demo agent made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub short_id: String,
    pub branch: String,
}

/// `git add DEMO_NOTES.md && git commit -m <message>` as the demo agent.
pub fn commit_notes(cwd: &Path, message: &str) -> Result<Commit, WorkError> {
    let repo = open(cwd)?;
    let git = |step: &'static str| move |source| WorkError::Git { step, source };
    let workdir = repo
        .workdir()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cwd.to_path_buf());
    let notes = cwd.join(NOTES_FILE);
    let relative = notes.strip_prefix(&workdir).unwrap_or(Path::new(NOTES_FILE));
    let mut index = repo.index().map_err(git("add"))?;
    index.add_path(relative).map_err(git("add"))?;
    index.write().map_err(git("add"))?;
    let tree_id = index.write_tree().map_err(git("write-tree"))?;
    let tree = repo.find_tree(tree_id).map_err(git("write-tree"))?;
    let signature = Signature::now(AUTHOR_NAME, AUTHOR_EMAIL).map_err(git("commit"))?;
    let parent = match repo.head() {
        Ok(head) => Some(head.peel_to_commit().map_err(git("commit"))?),
        Err(_) => None,
    };
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let id = repo
        .commit(Some("HEAD"), &signature, &signature, message, &tree, &parents)
        .map_err(git("commit"))?;
    let branch = repo
        .head()
        .ok()
        .and_then(|h| h.shorthand().ok().map(str::to_string))
        .unwrap_or_else(|| "HEAD".into());
    let short_id = id.to_string()[..7].to_string();
    Ok(Commit { short_id, branch })
}
