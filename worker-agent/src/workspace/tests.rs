//! Worktrees from real git repositories: creation, reuse, hooks, removal, listing, fetching.

use std::process::Command as StdCommand;

use super::*;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = StdCommand::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    source: PathBuf,
    layout: Layout,
    scratch: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    std::fs::create_dir(&source).unwrap();
    git(&source, &["init", "-q", "-b", "main"]);
    std::fs::write(source.join("README.md"), "hello\n").unwrap();
    git(&source, &["add", "."]);
    git(&source, &["commit", "-q", "-m", "first"]);
    let layout = Layout::open(tmp.path().join("root").to_str().unwrap(), None).unwrap();
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    Fixture {
        source,
        layout,
        scratch,
        _tmp: tmp,
    }
}

fn request(f: &Fixture, issue: &str, hooks: Hooks) -> PrepareWorkspace {
    PrepareWorkspace {
        issue: issue.to_string(),
        repo: f.source.display().to_string(),
        base_branch: "main".to_string(),
        branch: format!("itervox/{}", sanitise_identifier(issue)),
        hooks,
        progress: false,
    }
}

/// `prepare` with its entries kept for the answer (no listener), stamped with the real time.
async fn prepare_kept(layout: &Layout, req: &PrepareWorkspace) -> Result<PreparedWorkspace, WorkspaceError> {
    prepare(layout, req, Utc::now, CallLog::default()).await
}

fn counting_hook(f: &Fixture, name: &str) -> String {
    format!("echo ran >> {}", f.scratch.join(name).display())
}

fn count(f: &Fixture, name: &str) -> usize {
    std::fs::read_to_string(f.scratch.join(name))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// With a live log, every entry (the start, the clone, the hook's output and outcome) is sent as it
/// happens, in order, and the answer carries none of them.
#[tokio::test]
async fn a_live_log_gets_every_entry_as_it_happens_and_the_answer_none() {
    let f = fixture();
    let hooks = Hooks {
        after_create: Some("echo installing deps; echo done".to_string()),
        ..Hooks::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let prepared = prepare(&f.layout, &request(&f, "ITX-9", hooks), Utc::now, CallLog::live(tx))
        .await
        .unwrap();
    assert!(prepared.created);
    assert!(prepared.log.is_empty(), "{:?}", prepared.log);
    let mut sent = Vec::new();
    while let Ok(e) = rx.try_recv() {
        sent.push(e.message);
    }
    let at = |needle: &str| {
        sent.iter()
            .position(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {sent:#?}"))
    };
    assert_eq!(at("preparing the worktree of ITX-9"), 0, "{sent:#?}");
    assert!(at("cloned ") < at("after_create: installing deps"), "{sent:#?}");
    assert!(
        at("after_create: installing deps") < at("after_create: done"),
        "{sent:#?}"
    );

    // Nobody listening any more: the entries come back in the answer instead of being lost.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    drop(rx);
    let again = prepare(
        &f.layout,
        &request(&f, "ITX-9", Hooks::default()),
        Utc::now,
        CallLog::live(tx),
    )
    .await
    .unwrap();
    assert!(!again.created);
    assert!(
        again
            .log
            .iter()
            .any(|e| e.message.contains("preparing the worktree of ITX-9")),
        "{:?}",
        again.log
    );
}

#[tokio::test]
async fn prepare_creates_a_mirror_and_a_worktree_then_reuses_it() {
    let f = fixture();
    let hooks = Hooks {
        after_create: Some(counting_hook(&f, "after_create")),
        ..Hooks::default()
    };
    let first = prepare_kept(&f.layout, &request(&f, "ITX-1", hooks.clone()))
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!(first.branch, "itervox/ITX-1");
    let path = PathBuf::from(&first.path);
    assert_eq!(path, f.layout.root().join("ITX-1"));
    assert_eq!(std::fs::read_to_string(path.join("README.md")).unwrap(), "hello\n");
    assert_eq!(git(&path, &["rev-parse", "--abbrev-ref", "HEAD"]), "itervox/ITX-1");
    assert_eq!(count(&f, "after_create"), 1);
    assert!(first.log.iter().any(|e| e.message.contains("after_create")));

    let mirror = f
        .layout
        .mirrors_dir()
        .join(mirror_name(&f.source.display().to_string()));
    assert!(mirror.join("HEAD").exists(), "bare mirror at {}", mirror.display());
    assert_eq!(git(&mirror, &["rev-parse", "--is-bare-repository"]), "true");

    // Work done in the worktree survives a second prepare, which reuses it and skips after_create.
    std::fs::write(path.join("work.txt"), "agent work\n").unwrap();
    let second = prepare_kept(&f.layout, &request(&f, "ITX-1", hooks)).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.path, first.path);
    assert_eq!(second.branch, "itervox/ITX-1");
    assert!(path.join("work.txt").exists());
    assert_eq!(count(&f, "after_create"), 1);
}

#[tokio::test]
async fn failing_after_create_removes_the_new_worktree_so_the_retry_runs_it_again() {
    let f = fixture();
    let flag = f.scratch.join("fail");
    std::fs::write(&flag, "").unwrap();
    let script = format!(
        "{}; if [ -e {} ]; then echo setup broke >&2; exit 4; fi",
        counting_hook(&f, "after_create"),
        flag.display()
    );
    let hooks = Hooks {
        after_create: Some(script),
        ..Hooks::default()
    };
    let err = prepare_kept(&f.layout, &request(&f, "ITX-2", hooks.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "hook_failed");
    let msg = err.to_string();
    assert!(msg.contains("exit code 4") && msg.contains("setup broke"), "{msg}");
    assert!(!f.layout.root().join("ITX-2").exists(), "the new worktree was removed");

    std::fs::remove_file(&flag).unwrap();
    let ok = prepare_kept(&f.layout, &request(&f, "ITX-2", hooks)).await.unwrap();
    assert!(ok.created);
    assert_eq!(count(&f, "after_create"), 2, "after_create ran again on the retry");
}

#[tokio::test]
async fn remove_runs_before_remove_deletes_and_prunes_but_keeps_the_branch() {
    let f = fixture();
    let prepared = prepare_kept(&f.layout, &request(&f, "team/ITX 3", Hooks::default()))
        .await
        .unwrap();
    let path = PathBuf::from(&prepared.path);
    assert_eq!(path, f.layout.root().join("team_ITX_3"));
    git(&path, &["commit", "-q", "--allow-empty", "-m", "agent work"]);

    let list = list(&f.layout).await.unwrap();
    assert_eq!(list.workspaces.len(), 1);
    let info = &list.workspaces[0];
    assert_eq!(info.issue, "team/ITX 3", "the original identifier comes back");
    assert_eq!(info.branch, "itervox/team_ITX_3");
    assert!(info.size_bytes > 0);

    let hooks = Hooks {
        before_remove: Some(format!("{}; exit 1", counting_hook(&f, "before_remove"))),
        ..Hooks::default()
    };
    let removed = remove(
        &f.layout,
        &RemoveWorkspace {
            issue: "team/ITX 3".to_string(),
            hooks: hooks.clone(),
        },
        Utc::now,
    )
    .await
    .unwrap();
    assert!(removed.removed);
    assert_eq!(count(&f, "before_remove"), 1);
    assert!(removed.log.iter().any(|e| e.message.contains("(ignored)")));
    assert!(!path.exists());
    let mirror = f
        .layout
        .mirrors_dir()
        .join(mirror_name(&f.source.display().to_string()));
    let repo = Repository::open_bare(&mirror).unwrap();
    assert!(repo.find_worktree("team_ITX_3").is_err(), "pruned from the mirror");
    let branch = repo
        .find_branch(&prepared.branch, BranchType::Local)
        .expect("the branch with the agent's work is kept");
    let tip = branch.get().peel_to_commit().unwrap();
    assert_eq!(tip.summary().unwrap(), Some("agent work"));
    assert!(list_is_empty(&f).await);

    let again = remove(
        &f.layout,
        &RemoveWorkspace {
            issue: "team/ITX 3".to_string(),
            hooks,
        },
        Utc::now,
    )
    .await
    .unwrap();
    assert!(!again.removed);
    assert_eq!(count(&f, "before_remove"), 1, "no hook without a worktree");

    // Preparing again reuses the kept branch, with the agent's commit.
    let back = prepare_kept(&f.layout, &request(&f, "team/ITX 3", Hooks::default()))
        .await
        .unwrap();
    assert!(back.created);
    assert_eq!(
        git(&PathBuf::from(&back.path), &["log", "-1", "--format=%s"]),
        "agent work"
    );
}

async fn list_is_empty(f: &Fixture) -> bool {
    list(&f.layout).await.unwrap().workspaces.is_empty()
}

#[tokio::test]
async fn new_worktrees_start_from_the_freshly_fetched_base() {
    let f = fixture();
    prepare_kept(&f.layout, &request(&f, "ITX-4", Hooks::default()))
        .await
        .unwrap();
    std::fs::write(f.source.join("NEW.md"), "new\n").unwrap();
    git(&f.source, &["add", "."]);
    git(&f.source, &["commit", "-q", "-m", "second"]);
    let head = git(&f.source, &["rev-parse", "HEAD"]);
    let p = prepare_kept(&f.layout, &request(&f, "ITX-5", Hooks::default()))
        .await
        .unwrap();
    assert_eq!(git(&PathBuf::from(&p.path), &["rev-parse", "HEAD"]), head);
}

#[tokio::test]
async fn bad_requests_are_refused_with_named_errors() {
    let f = fixture();
    let mut req = request(&f, "ITX-6", Hooks::default());
    req.base_branch = "does-not-exist".to_string();
    let err = prepare_kept(&f.layout, &req).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::BaseBranchMissing { .. }), "{err}");
    assert!(err.to_string().contains("does-not-exist"));
    assert!(!f.layout.root().join("ITX-6").exists());

    let mut req = request(&f, "ITX-6", Hooks::default());
    req.branch = "bad..name".to_string();
    let err = prepare_kept(&f.layout, &req).await.unwrap_err();
    assert_eq!(err.code(), "bad_request");

    let mut req = request(&f, "ITX-6", Hooks::default());
    req.repo = f.scratch.join("nope").display().to_string();
    let err = prepare_kept(&f.layout, &req).await.unwrap_err();
    assert_eq!(err.code(), "workspace_failed");
    assert!(err.to_string().contains("nope"), "{err}");
}
