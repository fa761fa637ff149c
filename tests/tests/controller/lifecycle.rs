//! One issue from Todo to Done: the running row, the tracker file, the history row, the agent's commit in
//! the worktree, and the issue's log through `/logs` and live `/log-stream` (with `Last-Event-ID`).

use std::time::Duration;

use itervox_tests::controller::snap;
use itervox_tests::project::{IssueSpec, git_output};
use itervox_tests::sse::{SseEvent, SseStream};
use serde_json::Value;

use crate::{DEADLINE, Setup, s, seqs_by_session};

#[tokio::test]
async fn todo_runs_and_ends_done_with_a_commit_on_its_branch() {
    let t = Setup::start(&[IssueSpec::new("T-1", "Todo", "Add a note. [demo:sleep=15]")], &[]).await;

    let st = t
        .wait("T-1 running", |s| {
            snap::running(s, "T-1").is_some_and(|r| r["workerHost"].is_string())
        })
        .await;
    let row = snap::running(&st, "T-1").unwrap();
    assert_eq!(s(row, "workerHost"), "local", "{row}");
    assert_eq!(s(row, "backend"), "demo", "{row}");
    let session = s(row, "sessionId").to_string();
    assert!(!session.is_empty(), "running row has a sessionId: {row}");
    assert_eq!(st["counts"]["running"], 1);

    let st = t
        .wait("T-1 finished", |s| {
            snap::running(s, "T-1").is_none() && !snap::history(s, "T-1").is_empty()
        })
        .await;
    let hist = snap::history(&st, "T-1");
    assert_eq!(hist.len(), 1, "one run: {hist:#?}");
    assert_eq!(s(hist[0], "status"), "succeeded", "{:#}", hist[0]);
    assert_eq!(s(hist[0], "workerHost"), "local");
    assert_eq!(s(hist[0], "sessionId"), session);
    assert!(hist[0]["turnCount"].as_u64().unwrap() >= 1, "{:#}", hist[0]);
    t.wait_tracker_state("T-1", "Done").await;

    // The agent's commit is on itervox/T-1 in the issue's worktree under the workspace root.
    let wt = t.worktree("T-1");
    assert!(wt.join(".git").exists(), "{} is a worktree", wt.display());
    let branch = git_output(&wt, &["rev-parse", "--abbrev-ref", "HEAD"]);
    assert_eq!(branch.trim(), "itervox/T-1");
    let log = git_output(&wt, &["log", "--format=%an|%s", "main..itervox/T-1"]);
    assert!(
        log.lines()
            .any(|l| l == "Itervox Demo Agent|T-1: record the demo agent's note"),
        "the agent's commit is on itervox/T-1:\n{log}"
    );
    let notes = std::fs::read_to_string(wt.join("DEMO_NOTES.md")).expect("the note was written");
    assert!(notes.contains("- T-1: worked on by the Itervox demo agent"), "{notes}");
    // The project's own repository is untouched: the work happened in the worktree.
    assert!(!t.project.repo.join("DEMO_NOTES.md").exists());

    let issue = t.api.get("/issues").await.unwrap();
    // Done is terminal: the issue is no longer a candidate, or shows idle.
    if let Some(i) = issue.as_array().unwrap().iter().find(|i| i["identifier"] == "T-1") {
        assert_eq!(s(i, "orchestratorState"), "idle", "{i}");
    }
}

fn log_events(events: &[SseEvent]) -> Vec<(u64, Value)> {
    events
        .iter()
        .filter(|e| e.event.as_deref() == Some("log"))
        .map(|e| {
            let id =
                e.id.as_deref()
                    .expect("every log event has an id")
                    .parse()
                    .expect("numeric id");
            (id, serde_json::from_str(&e.data).expect("log event data is JSON"))
        })
        .collect()
}

/// Reads events until one satisfies `stop` (it is included) or `DEADLINE` passes.
async fn read_until(stream: &mut SseStream, stop: impl Fn(&SseEvent) -> bool) -> Vec<SseEvent> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = stream
            .next(left)
            .await
            .unwrap_or_else(|| panic!("the stream ended or went quiet; got {out:#?}"));
        let done = stop(&ev);
        out.push(ev);
        if done {
            return out;
        }
    }
}

#[tokio::test]
async fn logs_are_ordered_and_the_log_stream_follows_live_and_resumes() {
    let t = Setup::start(&[IssueSpec::new("T-2", "Todo", "Add a note. [demo:sleep=20]")], &[]).await;
    let base = t.ctl.api();
    t.wait("T-2 running", |s| snap::running(s, "T-2").is_some()).await;

    // Open the stream while the session runs.
    let before = t.logs("T-2").await;
    let mut stream = SseStream::open(&format!("{base}/issues/T-2/log-stream"), &[])
        .await
        .unwrap();
    let events = read_until(&mut stream, |e| e.data.contains("Run finished")).await;
    t.wait("T-2 succeeded", |s| {
        snap::history(s, "T-2")
            .first()
            .is_some_and(|h| h["status"] == "succeeded")
    })
    .await;
    let live = log_events(&events);
    let ids: Vec<u64> = live.iter().map(|(id, _)| *id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "event ids strictly increase: {ids:?}"
    );
    // The stream delivered the stored entries and then the ones written after it was opened.
    assert!(
        live.len() > before.len(),
        "entries arrived live: {} before opening, {} streamed",
        before.len(),
        live.len()
    );
    let after_open: Vec<&Value> = live.iter().map(|(_, v)| v).skip(before.len()).collect();
    assert!(
        after_open.iter().any(|v| v["seq"].is_u64()),
        "agent entries arrived after the stream was opened: {after_open:#?}"
    );

    // /logs holds the same entries, in the same order, with per-session seqs strictly increasing.
    let logs = t.logs("T-2").await;
    let streamed: Vec<Value> = live.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(&logs[..streamed.len()], &streamed[..], "the stream and /logs agree");
    let by = seqs_by_session(&logs);
    assert_eq!(by.len(), 1, "one session: {by:?}");
    let seqs = by.values().next().unwrap();
    assert!(seqs.len() >= 8, "a demo run logs several entries: {seqs:?}");
    let session = by.keys().next().unwrap();
    assert_eq!(
        seqs,
        &crate::journal_log_seqs(&t.session_dir(session)),
        "every journaled log entry once"
    );
    assert!(
        logs.iter().any(|e| e["event"] == "action" && e["tool"] == "Bash"),
        "{logs:#?}"
    );

    // Resume from the middle: exactly the later entries, no duplicates.
    let mid = live.len() / 2;
    let (cursor, _) = live[mid];
    let mut resumed = SseStream::open(
        &format!("{base}/issues/T-2/log-stream"),
        &[("Last-Event-ID", &cursor.to_string())],
    )
    .await
    .unwrap();
    let want: Vec<(u64, Value)> = live[mid + 1..].to_vec();
    let mut got = Vec::new();
    while got.len() < want.len() {
        let ev = resumed
            .next(Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("resumed stream stopped after {got:#?}"));
        assert_ne!(ev.event.as_deref(), Some("gap"), "the cursor {cursor} exists");
        got.extend(log_events(&[ev]));
    }
    assert_eq!(got, want, "resume after {cursor} replays exactly the later entries");
    // Nothing else (a duplicate would show up here).
    if let Some(extra) = resumed.next(Duration::from_millis(1500)).await {
        let extra = log_events(&[extra]);
        assert!(
            extra.iter().all(|(id, _)| *id > want.last().map_or(cursor, |w| w.0)),
            "no duplicate after resume: {extra:?}"
        );
    }

    // A cursor that does not exist gets a gap event and a full replay.
    let mut gone = SseStream::open(&format!("{base}/issues/T-2/log-stream"), &[("Last-Event-ID", "999999")])
        .await
        .unwrap();
    let first = gone.next(Duration::from_secs(20)).await.expect("an event");
    assert_eq!(first.event.as_deref(), Some("gap"), "{first:?}");
}
