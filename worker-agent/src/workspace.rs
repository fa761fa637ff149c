//! Per-issue git worktrees: `prepare_workspace` (mirror fetch, worktree on the issue's branch, created
//! from the base branch when new, reused as-is when present, `after_create` on creation),
//! `remove_workspace` (`before_remove`, delete, prune; the branch is kept: the agent's work lives there)
//! and `list_workspaces`.

mod disk_usage;
mod git_cli;
mod mirror;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use git2::{BranchType, Repository, WorktreeAddOptions, WorktreePruneOptions};
use itervox_protocol::worker::{
    Hooks, PrepareWorkspace, PreparedWorkspace, RemoveWorkspace, WorkspaceInfo, WorkspaceList, WorkspaceRemoved,
};
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::atomic_file;
use crate::file_lock::FileLock;
use crate::hooks::{HookContext, HookKind, run_hook};
use crate::identifier::sanitise_identifier;
use crate::layout::Layout;

pub use mirror::mirror_name;

/// Why a workspace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("invalid {what} {value:?}: not a valid git branch name")]
    BadBranch { what: &'static str, value: String },
    #[error("the workspace path {path} is outside the workspace root {root}")]
    OutsideRoot { path: PathBuf, root: PathBuf },
    #[error("{path} exists but is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("`git {args}` failed for {repo}: {output}")]
    Git { repo: String, args: String, output: String },
    #[error("base branch {branch:?} not found in {repo} (mirror {mirror})")]
    BaseBranchMissing {
        branch: String,
        repo: String,
        mirror: PathBuf,
    },
    #[error("git error in {path}: {source}")]
    Git2 {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("the worktree name {name:?} is already used by {other} in mirror {mirror}")]
    NameInUse {
        name: String,
        other: PathBuf,
        mirror: PathBuf,
    },
    #[error("{message}")]
    HookFailed { message: String, log: Vec<IssueLogEntry> },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl WorkspaceError {
    /// The protocol error code.
    pub fn code(&self) -> &'static str {
        match self {
            WorkspaceError::BadBranch { .. } => "bad_request",
            WorkspaceError::HookFailed { .. } => "hook_failed",
            WorkspaceError::Io { .. } => "io",
            _ => "workspace_failed",
        }
    }

    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> WorkspaceError {
        let context = context.into();
        move |source| WorkspaceError::Io { context, source }
    }

    fn git2(path: &Path) -> impl FnOnce(git2::Error) -> WorkspaceError {
        let path = path.to_path_buf();
        move |source| WorkspaceError::Git2 { path, source }
    }
}

/// What `prepare_workspace` records about a worktree it created (`<root>/.itervox/workspaces/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkspaceRecord {
    issue: String,
    repo: String,
    mirror: PathBuf,
    branch: String,
    created_at: String,
}

/// The per-hook timeout; 0 (what `Hooks::default()` carries) means the protocol's default of 60 s.
pub fn hook_timeout(hooks: &Hooks) -> Duration {
    match hooks.timeout_ms {
        0 => Duration::from_secs(60),
        ms => Duration::from_millis(ms),
    }
}

fn non_empty(script: &Option<String>) -> Option<&str> {
    script.as_deref().filter(|s| !s.trim().is_empty())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WorkspaceError> + Send + 'static,
) -> Result<T, WorkspaceError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| WorkspaceError::Io {
        context: "a blocking workspace task failed".to_string(),
        source: std::io::Error::other(e),
    })?
}

async fn lock_issue(layout: &Layout, issue: &str) -> Result<FileLock, WorkspaceError> {
    let path = layout.locks_dir().join(format!("{}.lock", sanitise_identifier(issue)));
    blocking(move || FileLock::exclusive(&path).map_err(WorkspaceError::io("cannot lock the issue's workspace"))).await
}

/// Where the log entries of a workspace call go: kept for its answer, or sent at once to a listener
/// (the request's progress frames).
#[derive(Debug, Default)]
pub struct CallLog {
    kept: Vec<IssueLogEntry>,
    live: Option<tokio::sync::mpsc::UnboundedSender<IssueLogEntry>>,
}

impl CallLog {
    /// Entries go out through `live` as they are pushed (kept when nobody listens any more).
    pub fn live(tx: tokio::sync::mpsc::UnboundedSender<IssueLogEntry>) -> Self {
        CallLog {
            kept: Vec::new(),
            live: Some(tx),
        }
    }

    pub fn push(&mut self, entry: IssueLogEntry) {
        match &self.live {
            Some(tx) => {
                if let Err(unsent) = tx.send(entry) {
                    self.kept.push(unsent.0);
                }
            }
            None => self.kept.push(entry),
        }
    }

    pub fn extend(&mut self, entries: impl IntoIterator<Item = IssueLogEntry>) {
        for e in entries {
            self.push(e);
        }
    }

    /// Where entries go live, if they do (for a hook's output lines as it prints them).
    pub fn live_sender(&self) -> Option<tokio::sync::mpsc::UnboundedSender<IssueLogEntry>> {
        self.live.clone()
    }

    /// The entries that were not sent live.
    pub fn into_kept(self) -> Vec<IssueLogEntry> {
        self.kept
    }
}

/// Makes sure the issue's worktree exists (see the module docs). Its log entries go to `log` as they
/// happen; those not sent live come back in the answer.
pub async fn prepare(
    layout: &Layout,
    req: &PrepareWorkspace,
    now: impl Fn() -> DateTime<Utc>,
    mut log: CallLog,
) -> Result<PreparedWorkspace, WorkspaceError> {
    for (what, value) in [("branch", &req.branch), ("base branch", &req.base_branch)] {
        if !git2::Branch::name_is_valid(value).unwrap_or(false) {
            return Err(WorkspaceError::BadBranch {
                what,
                value: value.clone(),
            });
        }
    }
    let name = sanitise_identifier(&req.issue);
    let path = layout.workspace_dir(&req.issue);
    if !layout.contains(&path) {
        return Err(WorkspaceError::OutsideRoot {
            path,
            root: layout.root().to_path_buf(),
        });
    }
    log.push(IssueLogEntry::new(
        LogLevel::Info,
        LogEventKind::Info,
        format!(
            "{}: preparing the worktree of {} from {} ({})",
            crate::host_info::hostname(),
            req.issue,
            req.repo,
            req.base_branch
        ),
        crate::timestamp::rfc3339(now()),
    ));
    let _issue_lock = lock_issue(layout, &req.issue).await?;
    let (mirror, mirror_lock) = mirror::ensure(layout, &req.repo, &mut log, &now).await?;

    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => {
            drop(mirror_lock);
            let branch = current_branch(&path).unwrap_or_else(|| req.branch.clone());
            return Ok(PreparedWorkspace {
                path: path.display().to_string(),
                created: false,
                branch,
                log: log.into_kept(),
            });
        }
        Ok(_) => return Err(WorkspaceError::NotADirectory { path }),
        Err(_) => {}
    }

    let created_branch = {
        let (mirror, name, path, base, branch, repo) = (
            mirror.clone(),
            name.clone(),
            path.clone(),
            req.base_branch.clone(),
            req.branch.clone(),
            req.repo.clone(),
        );
        blocking(move || add_worktree(&mirror, &name, &path, &base, &branch, &repo)).await?
    };
    drop(mirror_lock);

    if let Some(script) = non_empty(&req.hooks.after_create) {
        let env = BTreeMap::new();
        let ctx = HookContext {
            workspace: &path,
            issue: &req.issue,
            timeout: hook_timeout(&req.hooks),
            env: &env,
            live: log.live_sender(),
        };
        let run = run_hook(HookKind::AfterCreate, script, &ctx, &CancellationToken::new()).await;
        log.extend(run.log_entries(now()));
        if !run.succeeded() {
            // Remove the new worktree so the retry runs after_create again.
            let (mirror, name, path2, branch) = (mirror.clone(), name.clone(), path.clone(), req.branch.clone());
            let undone = blocking(move || {
                remove_worktree(&mirror, &name, &path2)?;
                if created_branch {
                    delete_branch(&mirror, &branch)?;
                }
                Ok(())
            })
            .await;
            let mut message = run.failure_message(&path);
            if let Err(e) = undone {
                message.push_str(&format!(" (and removing the new worktree failed: {e})"));
            }
            return Err(WorkspaceError::HookFailed {
                message,
                log: log.into_kept(),
            });
        }
    }

    let record = WorkspaceRecord {
        issue: req.issue.clone(),
        repo: req.repo.clone(),
        mirror: mirror.clone(),
        branch: req.branch.clone(),
        created_at: crate::timestamp::rfc3339(now()),
    };
    atomic_file::write_json(&layout.workspace_record(&req.issue), &record)
        .map_err(WorkspaceError::io("cannot write the workspace record"))?;
    Ok(PreparedWorkspace {
        path: path.display().to_string(),
        created: true,
        branch: req.branch.clone(),
        log: log.into_kept(),
    })
}

/// Creates worktree `name` at `path` on `branch` (from `base` when the branch is new). Returns whether
/// the branch was created.
fn add_worktree(
    mirror: &Path,
    name: &str,
    path: &Path,
    base: &str,
    branch: &str,
    repo_url: &str,
) -> Result<bool, WorkspaceError> {
    let repo = Repository::open_bare(mirror).map_err(WorkspaceError::git2(mirror))?;
    if let Ok(existing) = repo.find_worktree(name) {
        if existing.validate().is_ok() && existing.path() != path {
            return Err(WorkspaceError::NameInUse {
                name: name.to_string(),
                other: existing.path().to_path_buf(),
                mirror: mirror.to_path_buf(),
            });
        }
        // A leftover entry whose folder is gone (deleted by hand, or a crash mid-creation).
        existing
            .prune(Some(WorktreePruneOptions::new().valid(true).working_tree(false)))
            .map_err(WorkspaceError::git2(mirror))?;
    }
    let (branch_ref, created) = match repo.find_branch(branch, BranchType::Local) {
        Ok(b) => (b, false),
        Err(e) if e.code() == git2::ErrorCode::NotFound => {
            let commit = base_commit(&repo, base).ok_or_else(|| WorkspaceError::BaseBranchMissing {
                branch: base.to_string(),
                repo: repo_url.to_string(),
                mirror: mirror.to_path_buf(),
            })?;
            let b = repo
                .branch(branch, &commit, false)
                .map_err(WorkspaceError::git2(mirror))?;
            (b, true)
        }
        Err(e) => return Err(WorkspaceError::git2(mirror)(e)),
    };
    let mut opts = WorktreeAddOptions::new();
    opts.reference(Some(branch_ref.get()));
    if let Err(e) = repo.worktree(name, path, Some(&opts)) {
        if created {
            let _ = delete_branch(mirror, branch);
        }
        let _ = std::fs::remove_dir_all(path);
        return Err(WorkspaceError::git2(mirror)(e));
    }
    Ok(created)
}

/// The commit of the base branch: the freshly fetched remote-tracking ref, else a local branch.
fn base_commit<'r>(repo: &'r Repository, base: &str) -> Option<git2::Commit<'r>> {
    [format!("refs/remotes/origin/{base}"), format!("refs/heads/{base}")]
        .iter()
        .find_map(|r| repo.find_reference(r).ok()?.peel_to_commit().ok())
}

fn delete_branch(mirror: &Path, branch: &str) -> Result<(), WorkspaceError> {
    let repo = Repository::open_bare(mirror).map_err(WorkspaceError::git2(mirror))?;
    let mut b = repo
        .find_branch(branch, BranchType::Local)
        .map_err(WorkspaceError::git2(mirror))?;
    b.delete().map_err(WorkspaceError::git2(mirror))
}

/// Deletes the worktree folder and prunes its entry from the mirror.
fn remove_worktree(mirror: &Path, name: &str, path: &Path) -> Result<(), WorkspaceError> {
    if path.exists() {
        fs_err::remove_dir_all(path).map_err(WorkspaceError::io("cannot delete the worktree"))?;
    }
    let repo = Repository::open_bare(mirror).map_err(WorkspaceError::git2(mirror))?;
    if let Ok(wt) = repo.find_worktree(name) {
        wt.prune(Some(WorktreePruneOptions::new().working_tree(false)))
            .map_err(WorkspaceError::git2(mirror))?;
    }
    Ok(())
}

/// The branch checked out in a worktree (`None` when detached or not a repository).
pub fn current_branch(worktree: &Path) -> Option<String> {
    let repo = Repository::open(worktree).ok()?;
    let head = repo.head().ok()?;
    if !head.is_branch() {
        return None;
    }
    head.shorthand().ok().map(str::to_string)
}

/// The mirror a worktree belongs to, from its `.git` file (`gitdir: <mirror>/worktrees/<name>`).
fn mirror_of(worktree: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(worktree.join(".git")).ok()?;
    let gitdir = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
    Some(gitdir.parent()?.parent()?.to_path_buf())
}

/// Runs `before_remove`, deletes the issue's worktree and prunes it from its mirror; keeps the branch.
pub async fn remove(
    layout: &Layout,
    req: &RemoveWorkspace,
    now: impl Fn() -> DateTime<Utc>,
) -> Result<WorkspaceRemoved, WorkspaceError> {
    let name = sanitise_identifier(&req.issue);
    let path = layout.workspace_dir(&req.issue);
    if !layout.contains(&path) {
        return Err(WorkspaceError::OutsideRoot {
            path,
            root: layout.root().to_path_buf(),
        });
    }
    let _issue_lock = lock_issue(layout, &req.issue).await?;
    let record_path = layout.workspace_record(&req.issue);
    let record: Option<WorkspaceRecord> = atomic_file::read_json(&record_path).ok().flatten();
    let exists = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
    let mut log = Vec::new();
    if exists && let Some(script) = non_empty(&req.hooks.before_remove) {
        let env = BTreeMap::new();
        let ctx = HookContext {
            workspace: &path,
            issue: &req.issue,
            timeout: hook_timeout(&req.hooks),
            env: &env,
            live: None,
        };
        let run = run_hook(HookKind::BeforeRemove, script, &ctx, &CancellationToken::new()).await;
        if !run.succeeded() {
            tracing::warn!(issue = %req.issue, result = %run.describe_result(), "before_remove hook failed; removing anyway");
        }
        log.extend(run.log_entries(now()));
    }
    let mirror = mirror_of(&path).or(record.map(|r| r.mirror));
    let path2 = path.clone();
    blocking(move || match mirror {
        Some(mirror) if mirror.exists() => remove_worktree(&mirror, &name, &path2),
        _ => {
            if path2.exists() {
                fs_err::remove_dir_all(&path2).map_err(WorkspaceError::io("cannot delete the worktree"))?;
            }
            Ok(())
        }
    })
    .await?;
    if let Err(e) = std::fs::remove_file(&record_path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %record_path.display(), error = %e, "Cannot delete the workspace record.");
    }
    Ok(WorkspaceRemoved { removed: exists, log })
}

/// Every worktree under the root, with its branch and size on disk.
pub async fn list(layout: &Layout) -> Result<WorkspaceList, WorkspaceError> {
    let layout = layout.clone();
    blocking(move || {
        let root = layout.root();
        let entries = fs_err::read_dir(root).map_err(WorkspaceError::io("cannot list the workspace root"))?;
        let mut workspaces = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            let record: Option<WorkspaceRecord> =
                atomic_file::read_json(&layout.workspace_record(&name)).ok().flatten();
            let branch = current_branch(&path)
                .or_else(|| record.as_ref().map(|r| r.branch.clone()))
                .unwrap_or_default();
            workspaces.push(WorkspaceInfo {
                issue: record.map(|r| r.issue).unwrap_or(name),
                path: path.display().to_string(),
                branch,
                size_bytes: disk_usage::size_of(&path),
            });
        }
        workspaces.sort_by(|a, b| a.issue.cmp(&b.issue));
        Ok(WorkspaceList { workspaces })
    })
    .await
}

#[cfg(test)]
mod tests;
