//! Bare mirrors of repositories under `<root>/.itervox/mirrors/`: cloned once (into a temp folder, then
//! renamed, so a crash never leaves half a mirror), fetched on every prepare. Remote branches land in
//! `refs/remotes/origin/*`, so fetching never touches the worktrees' local branches.

use std::ffi::OsStr;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};

use super::WorkspaceError;
use super::git_cli::git;
use crate::file_lock::FileLock;
use crate::identifier::{sanitise_identifier, short_hash};
use crate::layout::Layout;

/// The mirror folder name of a repository URL or path: `<last segment>-<hash of the url>.git`. Pure.
pub fn mirror_name(repo: &str) -> String {
    let trimmed = repo.trim().trim_end_matches('/');
    let last = trimmed.rsplit(['/', ':', '\\']).next().unwrap_or(trimmed);
    let last = last.strip_suffix(".git").unwrap_or(last);
    let mut name = sanitise_identifier(last);
    name.truncate(40);
    format!("{name}-{}.git", short_hash(trimmed))
}

/// Clones or fetches the mirror of `repo`; returns its path and the held mirror lock. A failed fetch
/// of an existing mirror is a warning (the worktree can still be made from what was fetched before).
pub async fn ensure(
    layout: &Layout,
    repo: &str,
    log: &mut super::CallLog,
    now: &impl Fn() -> DateTime<Utc>,
) -> Result<(PathBuf, FileLock), WorkspaceError> {
    let name = mirror_name(repo);
    let path = layout.mirrors_dir().join(&name);
    let lock_path = layout.mirrors_dir().join(format!("{name}.lock"));
    let lock = tokio::task::spawn_blocking(move || FileLock::exclusive(&lock_path))
        .await
        .map_err(|e| WorkspaceError::Io {
            context: "cannot lock the mirror".to_string(),
            source: std::io::Error::other(e),
        })?
        .map_err(WorkspaceError::io("cannot lock the mirror"))?;
    let git_err = |f: super::git_cli::GitFailure| WorkspaceError::Git {
        repo: repo.to_string(),
        args: f.args,
        output: f.output,
    };

    if path.join("HEAD").exists() {
        let git_dir = path.as_os_str();
        if let Err(f) = git(
            &[
                OsStr::new("--git-dir"),
                git_dir,
                OsStr::new("fetch"),
                OsStr::new("--prune"),
                OsStr::new("--quiet"),
                OsStr::new("origin"),
            ],
            None,
        )
        .await
        {
            tracing::warn!(repo, error = %f.output, "Fetching the mirror failed; using what it has.");
            log.push(IssueLogEntry::new(
                LogLevel::Warn,
                LogEventKind::Warn,
                format!("fetching {repo} failed, using the last fetched state: {}", f.output),
                crate::timestamp::rfc3339(now()),
            ));
        }
        return Ok((path, lock));
    }

    let tmp = layout
        .mirrors_dir()
        .join(format!(".tmp-{}-{}", name, uuid::Uuid::new_v4().simple()));
    let result = async {
        git(
            &[
                OsStr::new("clone"),
                OsStr::new("--bare"),
                OsStr::new("--quiet"),
                OsStr::new("--"),
                OsStr::new(repo),
                tmp.as_os_str(),
            ],
            None,
        )
        .await
        .map_err(git_err)?;
        let git_dir = tmp.as_os_str();
        git(
            &[
                OsStr::new("--git-dir"),
                git_dir,
                OsStr::new("config"),
                OsStr::new("remote.origin.fetch"),
                OsStr::new("+refs/heads/*:refs/remotes/origin/*"),
            ],
            None,
        )
        .await
        .map_err(git_err)?;
        git(
            &[
                OsStr::new("--git-dir"),
                git_dir,
                OsStr::new("fetch"),
                OsStr::new("--prune"),
                OsStr::new("--quiet"),
                OsStr::new("origin"),
            ],
            None,
        )
        .await
        .map_err(git_err)?;
        fs_err::rename(&tmp, &path).map_err(WorkspaceError::io("cannot move the new mirror into place"))
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result?;
    log.push(IssueLogEntry::new(
        LogLevel::Info,
        LogEventKind::Info,
        format!("cloned {repo} into mirror {}", path.display()),
        crate::timestamp::rfc3339(now()),
    ));
    Ok((path, lock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_names() {
        let a = mirror_name("git@github.com:org/repo.git");
        assert!(a.starts_with("repo-") && a.ends_with(".git"), "{a}");
        let b = mirror_name("https://github.com/org/repo");
        assert!(b.starts_with("repo-"), "{b}");
        assert_ne!(a, b, "different URLs get different mirrors");
        assert_eq!(mirror_name("/srv/git/app/"), mirror_name("/srv/git/app"));
        assert!(mirror_name("/srv/git/.hidden").starts_with("_hidden-"));
        assert!(mirror_name("").ends_with(".git"));
    }
}
