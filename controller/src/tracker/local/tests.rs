//! Tests of the local tracker against real files in a temp folder.

use std::fs;
use std::sync::Arc;

use super::*;

const ISSUE_1: &str = r#"---
identifier: ITX-1
title: "Make the build green"   
state: Todo
labels: [CI, Backend]
priority: 2
created: 2025-05-01T10:00:00Z
blocked_by: [ITX-2, ITX-404]
# a comment a person left
custom_key: {nested: true}
---

The description, with **Markdown**.

    indented code

<!-- itervox:comments -->

### alice · 2025-05-02T09:30:00Z
First comment.

Second paragraph.

### bob · 2025-05-03
Hand-written, date only.
"#;

const ISSUE_2: &str = "---\ntitle: Blocker\nstate: In Progress\n---\nNo comments here.";

fn tracker() -> (tempfile::TempDir, LocalTracker) {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTracker::open_dir(dir.path(), "ITX").unwrap();
    (dir, t)
}

fn write(t: &LocalTracker, name: &str, text: &str) {
    fs::write(t.dir().join(name), text).unwrap();
}

fn read(t: &LocalTracker, name: &str) -> String {
    fs::read_to_string(t.dir().join(name)).unwrap()
}

/// The lines of `after` that differ from `before`, assuming the same number of lines.
fn changed_lines(before: &str, after: &str) -> Vec<(String, String)> {
    let b: Vec<&str> = before.split_inclusive('\n').collect();
    let a: Vec<&str> = after.split_inclusive('\n').collect();
    assert_eq!(a.len(), b.len(), "line count changed:\n{after}");
    b.iter()
        .zip(&a)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| (x.to_string(), y.to_string()))
        .collect()
}

#[tokio::test]
async fn reads_every_field_and_resolves_blockers() {
    let (_d, t) = tracker();
    write(&t, "ITX-1.md", ISSUE_1);
    write(&t, "ITX-2.md", ISSUE_2);

    let issue = t.fetch_issue("ITX-1").await.unwrap().unwrap();
    assert_eq!(issue.identifier, "ITX-1");
    assert_eq!(issue.id, "ITX-1");
    assert_eq!(issue.title, "Make the build green");
    assert_eq!(issue.state, "Todo");
    assert_eq!(issue.labels, vec!["ci", "backend"], "labels are lower-cased");
    assert_eq!(issue.priority, Some(2));
    assert_eq!(
        issue.description.as_deref(),
        Some("The description, with **Markdown**.\n\n    indented code")
    );
    assert_eq!(issue.created_at.unwrap().to_rfc3339(), "2025-05-01T10:00:00+00:00");
    assert_eq!(issue.blocked_by.len(), 2);
    assert_eq!(issue.blocked_by[0].identifier, "ITX-2");
    assert_eq!(issue.blocked_by[0].state.as_deref(), Some("In Progress"));
    assert_eq!(issue.blocked_by[1].state, None, "an unknown blocker has no state");

    assert_eq!(issue.comments.len(), 2);
    assert_eq!(issue.comments[0].author, "alice");
    assert_eq!(issue.comments[0].body, "First comment.\n\nSecond paragraph.");
    assert_eq!(issue.comments[1].author, "bob");
    assert_eq!(issue.comments[1].body, "Hand-written, date only.");
    assert_eq!(
        issue.comments[1].created_at.unwrap().to_rfc3339(),
        "2025-05-03T00:00:00+00:00"
    );

    let blocker = t.fetch_issue("ITX-2").await.unwrap().unwrap();
    assert_eq!(blocker.description.as_deref(), Some("No comments here."));
    assert!(blocker.comments.is_empty());
    assert!(t.fetch_issue("ITX-9").await.unwrap().is_none());
}

#[tokio::test]
async fn candidates_filter_states_case_insensitively_in_file_order() {
    let (_d, t) = tracker();
    write(&t, "ITX-2.md", ISSUE_2);
    write(&t, "ITX-1.md", ISSUE_1);
    write(&t, "notes.txt", "not an issue");
    write(&t, ".ITX-3.md.tmp", "half-written");

    let got = t
        .fetch_candidates(&["todo".into(), "IN PROGRESS".into()])
        .await
        .unwrap();
    let ids: Vec<&str> = got.iter().map(|i| i.identifier.as_str()).collect();
    assert_eq!(ids, vec!["ITX-1", "ITX-2"]);
    assert_eq!(got[0].blocked_by[0].state.as_deref(), Some("In Progress"));
    assert!(t.fetch_candidates(&[]).await.unwrap().is_empty());
    assert!(t.fetch_by_identifiers(&[]).await.unwrap().is_empty());

    let refreshed = t
        .fetch_by_identifiers(&["ITX-2".into(), "ITX-77".into()])
        .await
        .unwrap();
    assert_eq!(refreshed.len(), 1);
    assert_eq!(refreshed[0].identifier, "ITX-2");
}

#[tokio::test]
async fn identifiers_come_from_the_stem_with_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let config = TrackerConfig {
        project_slug: "ENG".into(),
        issues_dir: dir.path().join("issues"),
        ..TrackerConfig::default()
    };
    let t = LocalTracker::open(&config).unwrap();
    assert!(t.dir().is_dir(), "open creates the folder");
    write(&t, "7.md", "---\ntitle: Seven\nstate: Todo\n---\n");
    write(&t, "setup-ci.md", "---\ntitle: Named\nstate: Todo\n---\n");
    let got = t.fetch_candidates(&["Todo".into()]).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|i| i.identifier.as_str()).collect();
    assert_eq!(ids, vec!["ENG-7", "setup-ci"]);
    t.move_state("ENG-7", "Done").await.unwrap();
    assert_eq!(t.fetch_issue("ENG-7").await.unwrap().unwrap().state, "Done");

    let default = LocalTracker::open(&TrackerConfig {
        issues_dir: dir.path().join("other"),
        ..TrackerConfig::default()
    })
    .unwrap();
    write(&default, "3.md", "---\ntitle: Three\nstate: Todo\n---\n");
    assert!(default.fetch_issue("ITX-3").await.unwrap().is_some());
}

#[tokio::test]
async fn a_state_move_changes_only_the_state_line() {
    let (_d, t) = tracker();
    write(&t, "ITX-1.md", ISSUE_1);
    t.move_state("ITX-1", "In Progress").await.unwrap();
    let after = read(&t, "ITX-1.md");
    assert_eq!(
        changed_lines(ISSUE_1, &after),
        vec![("state: Todo\n".to_string(), "state: In Progress\n".to_string())]
    );
    assert_eq!(t.fetch_issue("ITX-1").await.unwrap().unwrap().state, "In Progress");

    // A value YAML would misread is quoted, and reads back as written.
    t.move_state("ITX-1", "Done: for real").await.unwrap();
    let after2 = read(&t, "ITX-1.md");
    assert_eq!(
        changed_lines(&after, &after2),
        vec![(
            "state: In Progress\n".to_string(),
            "state: \"Done: for real\"\n".to_string()
        )]
    );
    assert_eq!(t.fetch_issue("ITX-1").await.unwrap().unwrap().state, "Done: for real");
    let leftovers: Vec<_> = fs::read_dir(t.dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temp files left behind");
}

#[tokio::test]
async fn crlf_files_keep_their_line_endings() {
    let (_d, t) = tracker();
    let text = ISSUE_2.replace('\n', "\r\n");
    write(&t, "ITX-2.md", &text);
    t.move_state("ITX-2", "Done").await.unwrap();
    let after = read(&t, "ITX-2.md");
    assert_eq!(after, text.replace("state: In Progress\r\n", "state: Done\r\n"));
}

#[tokio::test]
async fn recording_a_branch_adds_one_line_before_the_closing_fence() {
    let (_d, t) = tracker();
    write(&t, "ITX-1.md", ISSUE_1);
    t.record_branch("ITX-1", "itervox/ITX-1").await.unwrap();
    let after = read(&t, "ITX-1.md");
    let expected = ISSUE_1.replacen(
        "custom_key: {nested: true}\n---\n",
        "custom_key: {nested: true}\nbranch: itervox/ITX-1\n---\n",
        1,
    );
    assert_eq!(after, expected);
    assert_eq!(
        t.fetch_issue("ITX-1").await.unwrap().unwrap().branch_name.as_deref(),
        Some("itervox/ITX-1")
    );
    // Recording the same branch again writes nothing; a new one replaces the line.
    t.record_branch("ITX-1", "itervox/ITX-1").await.unwrap();
    assert_eq!(read(&t, "ITX-1.md"), expected);
    t.record_branch("ITX-1", "feature/x").await.unwrap();
    assert_eq!(
        changed_lines(&expected, &read(&t, "ITX-1.md")),
        vec![("branch: itervox/ITX-1\n".to_string(), "branch: feature/x\n".to_string())]
    );
}

#[tokio::test]
async fn comments_are_appended_and_read_back() {
    let (_d, t) = tracker();
    write(&t, "ITX-1.md", ISSUE_1);
    write(&t, "ITX-2.md", ISSUE_2);

    t.add_comment("ITX-1", "Agent finished.\n\n### not · a header\nDone.")
        .await
        .unwrap();
    let after = read(&t, "ITX-1.md");
    assert!(after.starts_with(ISSUE_1), "the existing text is kept byte-for-byte");
    let comments = t.fetch_issue("ITX-1").await.unwrap().unwrap().comments;
    assert_eq!(comments.len(), 3);
    assert_eq!(comments[2].author, "itervox");
    assert_eq!(comments[2].body, "Agent finished.\n\n### not · a header\nDone.");
    assert!(comments[2].created_at.is_some());

    // A file without a comments section gets the marker first, and its last line keeps its bytes.
    t.add_comment("ITX-2", "hello").await.unwrap();
    let after2 = read(&t, "ITX-2.md");
    assert!(after2.starts_with(ISSUE_2));
    assert!(after2.contains(&format!("\n{COMMENTS_MARKER}\n")));
    let issue2 = t.fetch_issue("ITX-2").await.unwrap().unwrap();
    assert_eq!(issue2.description.as_deref(), Some("No comments here."));
    assert_eq!(issue2.comments.len(), 1);
    assert_eq!(issue2.comments[0].body, "hello");
    assert!(t.has_comment_with_marker("ITX-2", "hello").await.unwrap());
    assert!(!t.has_comment_with_marker("ITX-2", "absent").await.unwrap());

    assert!(matches!(
        t.add_comment("ITX-404", "x").await,
        Err(TrackerError::NotFound(id)) if id == "ITX-404"
    ));
}

#[tokio::test]
async fn a_malformed_file_is_skipped_in_lists_and_an_error_by_identifier() {
    let (_d, t) = tracker();
    write(&t, "ITX-1.md", ISSUE_1);
    write(&t, "ITX-5.md", "---\ntitle: [unclosed\nstate: Todo\n---\n");
    write(&t, "ITX-6.md", "no front matter at all\n");
    write(&t, "ITX-7.md", "---\ntitle: No state\n---\n");

    let got = t.fetch_candidates(&["Todo".into()]).await.unwrap();
    assert_eq!(got.len(), 1, "malformed files are left out of lists");

    for id in ["ITX-5", "ITX-6", "ITX-7"] {
        match t.fetch_issue(id).await {
            Err(TrackerError::Malformed(msg)) => assert!(msg.contains(&format!("{id}.md")), "{msg}"),
            other => panic!("{id}: expected a malformed error, got {other:?}"),
        }
    }
    assert!(matches!(
        t.fetch_by_identifiers(&["ITX-1".into(), "ITX-7".into()]).await,
        Err(TrackerError::Malformed(_))
    ));
    assert_eq!(t.fetch_by_identifiers(&["ITX-1".into()]).await.unwrap().len(), 1);
    assert!(matches!(
        t.move_state("ITX-7", "Done").await,
        Err(TrackerError::Malformed(_))
    ));
    assert_eq!(
        read(&t, "ITX-7.md"),
        "---\ntitle: No state\n---\n",
        "a malformed file is not written"
    );
}

#[tokio::test]
async fn optional_fields_that_do_not_parse_become_empty() {
    let (_d, t) = tracker();
    write(
        &t,
        "ITX-8.md",
        "---\ntitle: 42\nstate: Todo\npriority: high\nlabels: bug, ui\ncreated: yesterday\nblocked_by: {x: 1}\n---\n",
    );
    let i = t.fetch_issue("ITX-8").await.unwrap().unwrap();
    assert_eq!(i.title, "42");
    assert_eq!(i.priority, None);
    assert_eq!(i.labels, vec!["bug", "ui"]);
    assert_eq!(i.created_at, None);
    assert!(i.blocked_by.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_are_all_kept() {
    let (_d, t) = tracker();
    write(&t, "ITX-1.md", ISSUE_1);
    let t = Arc::new(t);
    let mut tasks = Vec::new();
    for n in 0..16 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.add_comment("ITX-1", &format!("comment {n}")).await.unwrap();
            if n % 4 == 0 {
                t.move_state("ITX-1", &format!("State {n}")).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let issue = t.fetch_issue("ITX-1").await.unwrap().unwrap();
    for n in 0..16 {
        let body = format!("comment {n}");
        assert!(issue.comments.iter().any(|c| c.body == body), "{body} is missing");
    }
    assert_eq!(issue.comments.len(), 18);
    assert!(issue.state.starts_with("State "));
    assert!(read(&t, "ITX-1.md").starts_with(&ISSUE_1[..ISSUE_1.find("state:").unwrap()]));
}

#[tokio::test]
async fn an_identifier_in_the_front_matter_wins_over_the_file_name() {
    let (_d, t) = tracker();
    write(
        &t,
        "renamed.md",
        "---\nidentifier: ITX-40\ntitle: Moved\nstate: Todo\n---\n",
    );
    t.move_state("ITX-40", "Done").await.unwrap();
    assert_eq!(t.fetch_issue("ITX-40").await.unwrap().unwrap().state, "Done");
    assert!(t.fetch_issue("renamed").await.unwrap().is_none());
    assert!(t.fetch_issue("../etc/passwd").await.unwrap().is_none());
}

#[tokio::test]
async fn new_issues_take_the_next_number() {
    let (_d, t) = tracker();
    write(&t, "ITX-1.md", ISSUE_1);
    write(&t, "ITX-9.md", "---\ntitle: Nine\nstate: Done\n---\n");
    let created = t
        .create_issue(NewIssue {
            title: "Write: the docs".into(),
            state: "Todo".into(),
            description: Some("Body".into()),
            labels: vec!["Docs".into()],
            priority: Some(3),
            blocked_by: vec!["ITX-1".into()],
        })
        .await
        .unwrap();
    assert_eq!(created.identifier, "ITX-10");
    let read_back = t.fetch_issue("ITX-10").await.unwrap().unwrap();
    assert_eq!(read_back.title, "Write: the docs");
    assert_eq!(read_back.labels, vec!["docs"]);
    assert_eq!(read_back.priority, Some(3));
    assert_eq!(read_back.description.as_deref(), Some("Body"));
    assert_eq!(read_back.blocked_by[0].state.as_deref(), Some("Todo"));
}

#[test]
fn yaml_scalars_are_plain_only_when_they_read_back_the_same() {
    use super::issue_file::yaml_scalar;
    assert_eq!(yaml_scalar("In Progress"), "In Progress");
    assert_eq!(yaml_scalar("itervox/ITX-1"), "itervox/ITX-1");
    for tricky in [
        "yes", "No", "1.5", "42", "a: b", "#x", "- x", "", " padded", "x\ny", "[x]",
    ] {
        let quoted = yaml_scalar(tricky);
        let back: String = yaml_serde::from_str(&quoted).unwrap();
        assert_eq!(back, tricky, "{quoted}");
    }
}
