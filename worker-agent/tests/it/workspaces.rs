//! Worktrees over the protocol: prepare (mirror, branch, reuse, after_create once, rollback on failure),
//! list, and remove.

use std::path::PathBuf;

use serde_json::json;

use crate::harness::*;

#[test]
fn prepare_reuse_list_and_remove_over_stdio() {
    let host = Host::new();
    let (mut w, _) = Worker::ready(&host);
    let counter = host.scratch("after_create.count");
    let hooks = json!({"afterCreate": format!("echo created-$ITERVOX_ISSUE_IDENTIFIER; echo x >> {}", counter.display()), "timeoutMs": 60000});
    let request = json!({
        "type": "prepare_workspace",
        "issue": "ITX-1",
        "repo": host.repo.display().to_string(),
        "baseBranch": "main",
        "branch": "itervox/ITX-1",
        "hooks": hooks,
    });
    let first = w.ok(request.clone());
    assert_eq!(first["created"], true);
    assert_eq!(first["branch"], "itervox/ITX-1");
    let path = PathBuf::from(first["path"].as_str().unwrap());
    assert_eq!(path, std::fs::canonicalize(&host.root).unwrap().join("ITX-1"));
    assert_eq!(git(&path, &["rev-parse", "--abbrev-ref", "HEAD"]), "itervox/ITX-1");
    let log = first["log"].as_array().unwrap();
    assert!(
        log.iter()
            .any(|e| e["message"].as_str().unwrap().contains("created-ITX-1")),
        "{first}"
    );
    let mirrors: Vec<_> = std::fs::read_dir(host.root.join(".itervox/mirrors"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".git"))
        .collect();
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
    assert!(mirrors[0].starts_with("repo-"));

    let second = w.ok(request);
    assert_eq!(second["created"], false);
    assert_eq!(second["path"], first["path"]);
    assert_eq!(
        std::fs::read_to_string(&counter).unwrap().lines().count(),
        1,
        "after_create ran once"
    );

    let list = w.ok(json!({"type": "list_workspaces"}));
    let ws = list["workspaces"].as_array().unwrap();
    assert_eq!(ws.len(), 1);
    assert_eq!(ws[0]["issue"], "ITX-1");
    assert_eq!(ws[0]["branch"], "itervox/ITX-1");
    assert!(ws[0]["sizeBytes"].as_u64().unwrap() > 0);

    let removed = w.ok(json!({"type": "remove_workspace", "issue": "ITX-1", "hooks": {"beforeRemove": "echo bye", "timeoutMs": 60000}}));
    assert_eq!(removed["removed"], true);
    assert!(
        removed["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("bye"))
    );
    assert!(!path.exists());
    let mirror = host.root.join(".itervox/mirrors").join(&mirrors[0]);
    assert_eq!(
        git(&mirror, &["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1,
        "only the bare repo itself is left"
    );
    assert!(
        !git(&mirror, &["branch", "--list", "itervox/ITX-1"]).is_empty(),
        "the branch is kept"
    );
    assert_eq!(w.ok(json!({"type": "list_workspaces"}))["workspaces"], json!([]));
    let again = w.ok(json!({"type": "remove_workspace", "issue": "ITX-1"}));
    assert_eq!(again["removed"], false);
}

#[test]
fn a_failing_after_create_answers_hook_failed_and_leaves_no_worktree() {
    let host = Host::new();
    let (mut w, _) = Worker::ready(&host);
    let err = w.request(json!({
        "type": "prepare_workspace",
        "issue": "ITX-2",
        "repo": host.repo.display().to_string(),
        "baseBranch": "main",
        "branch": "itervox/ITX-2",
        "hooks": {"afterCreate": "echo npm ci exploded >&2; exit 9", "timeoutMs": 60000},
    }));
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "hook_failed");
    let msg = err["message"].as_str().unwrap();
    assert!(msg.contains("exit code 9") && msg.contains("npm ci exploded"), "{msg}");
    assert!(!host.root.join("ITX-2").exists());
    let err = w.request(json!({
        "type": "prepare_workspace",
        "issue": "ITX-2",
        "repo": host.scratch("missing-repo").display().to_string(),
        "baseBranch": "main",
        "branch": "itervox/ITX-2",
    }));
    assert_eq!(err["code"], "workspace_failed");
    assert!(err["message"].as_str().unwrap().contains("missing-repo"), "{err}");
}

/// `"progress": true`: the entries of the call arrive as `progress` frames carrying the request's id,
/// every one before the answer, in the order they happened; the answer's `log` is then empty.
#[test]
fn prepare_with_progress_streams_its_entries_before_the_answer() {
    let host = Host::new();
    let (mut w, _) = Worker::ready(&host);
    let id = w.send_request(json!({
        "type": "prepare_workspace",
        "issue": "ITX-7",
        "repo": host.repo.display().to_string(),
        "baseBranch": "main",
        "branch": "itervox/ITX-7",
        "hooks": {"afterCreate": "echo step-one; echo step-two", "timeoutMs": 60000},
        "progress": true,
    }));
    let mut progress = Vec::new();
    let answer = loop {
        let frame = w.next_frame();
        if frame["id"] != id {
            continue;
        }
        match frame["type"].as_str() {
            Some("progress") => progress.push(frame["entry"]["message"].as_str().unwrap_or_default().to_string()),
            _ => break frame,
        }
    };
    assert_eq!(answer["type"], "ok", "{answer}");
    assert_eq!(answer["created"], true, "{answer}");
    assert!(
        answer.get("log").is_none(),
        "the entries went out as progress: {answer}"
    );
    let at = |needle: &str| {
        progress
            .iter()
            .position(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("no progress entry with {needle:?}: {progress:#?}"))
    };
    assert_eq!(at("preparing the worktree of ITX-7"), 0);
    assert!(at("cloned ") < at("after_create: step-one"), "{progress:#?}");
    assert!(
        at("after_create: step-one") < at("after_create: step-two"),
        "{progress:#?}"
    );
}
