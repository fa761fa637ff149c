//! Dispatch order and gates under the real controller: with one slot (`agent.max_concurrent_agents: 1`)
//! issues run one at a time in priority order, an issue blocked by an unfinished one waits (its
//! `ineligibleReason` says by whom) and runs once its blocker is done, and the others wait for the slot
//! with `no_slots`; a per-state cap (`agent.max_concurrent_agents_by_state`) holds one state's issues to
//! its limit while other states' issues run alongside.

use chrono::{DateTime, Utc};
use itervox_tests::controller::{Api, ControllerProcess, snap};
use itervox_tests::project::{IssueSpec, Project};
use serde_json::Value;

use crate::{Setup, eventually, s};

/// A Todo issue whose run takes about `tenths` × 0.7 s.
fn spec(id: &str, priority: u8, blocked_by: &[&str], tenths: u32) -> IssueSpec {
    IssueSpec {
        priority: Some(priority),
        blocked_by: blocked_by.iter().map(|b| b.to_string()).collect(),
        ..IssueSpec::new(id, "Todo", &format!("Quick. [demo:sleep={tenths}]"))
    }
}

/// The `ineligibleReason` of `id` in `GET /issues`.
async fn why_idle(t: &Setup, id: &str) -> Option<String> {
    let issues = t.api.get("/issues").await.ok()?;
    issues
        .as_array()?
        .iter()
        .find(|i| i["identifier"] == id)
        .and_then(|i| i["ineligibleReason"].as_str().map(str::to_string))
}

#[tokio::test]
async fn one_slot_runs_issues_one_at_a_time_by_priority_and_blockers_hold_until_done() {
    // O-3 outranks O-1 and O-4 but is blocked by O-4, the lowest priority.
    let project = Project::new(
        &[
            spec("O-1", 3, &[], 3),
            // Long enough to look at the others while it runs.
            spec("O-2", 1, &[], 25),
            spec("O-3", 2, &["O-4"], 3),
            spec("O-4", 4, &[], 3),
        ],
        "",
        "",
    );
    let text = std::fs::read_to_string(&project.workflow).unwrap();
    assert!(text.contains("  max_concurrent_agents: 6\n"));
    std::fs::write(
        &project.workflow,
        text.replace("  max_concurrent_agents: 6\n", "  max_concurrent_agents: 1\n"),
    )
    .unwrap();
    let ctl = ControllerProcess::start(&project.workflow, &project.state_dir, &[])
        .await
        .expect("controller starts");
    let api = Api::new(&ctl.api(), None);
    let t = Setup { project, ctl, api };

    // While O-2 runs: O-3 waits for its blocker, O-1 and O-4 for the slot.
    t.wait("O-2 running", |s| snap::running(s, "O-2").is_some()).await;
    assert_eq!(why_idle(&t, "O-3").await.as_deref(), Some("blocked_by:O-4"));
    assert_eq!(why_idle(&t, "O-1").await.as_deref(), Some("no_slots"));

    let most_running = std::cell::Cell::new(0);
    let st = t
        .wait("all four succeeded", |s| {
            let now = s["running"].as_array().map_or(0, Vec::len);
            most_running.set(most_running.get().max(now));
            ["O-1", "O-2", "O-3", "O-4"]
                .iter()
                .all(|id| snap::history(s, id).first().is_some_and(|h| h["status"] == "succeeded"))
        })
        .await;
    let most = most_running.get();
    assert!(most <= 1, "one slot, but {most} ran at once");

    let mut runs: Vec<(DateTime<Utc>, DateTime<Utc>, String)> = ["O-1", "O-2", "O-3", "O-4"]
        .iter()
        .map(|id| {
            let h: &Value = snap::history(&st, id)[0];
            (
                s(h, "startedAt").parse().expect("startedAt"),
                s(h, "finishedAt").parse().expect("finishedAt"),
                id.to_string(),
            )
        })
        .collect();
    runs.sort();
    let order: Vec<&str> = runs.iter().map(|(_, _, id)| id.as_str()).collect();
    assert_eq!(
        order,
        ["O-2", "O-1", "O-4", "O-3"],
        "priority order, with O-3 after its blocker"
    );
    for pair in runs.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "{} started at {} before {} finished at {}",
            pair[1].2,
            pair[1].0,
            pair[0].2,
            pair[0].1
        );
    }
    for id in ["O-1", "O-2", "O-3", "O-4"] {
        t.wait_tracker_state(id, "Done").await;
    }
}

/// A run's `[startedAt, finishedAt]` from its newest history row.
fn span(st: &Value, id: &str) -> (DateTime<Utc>, DateTime<Utc>) {
    let h: &Value = snap::history(st, id)[0];
    (
        s(h, "startedAt").parse().expect("startedAt"),
        s(h, "finishedAt").parse().expect("finishedAt"),
    )
}

#[tokio::test]
async fn a_per_state_cap_runs_that_states_issues_one_at_a_time_beside_other_states() {
    // Three Todo issues under a cap of one (spelled as the tracker does; caps are case-insensitive), and
    // an In Progress issue, last in priority order, long enough to run beside them.
    const TODO: [&str; 3] = ["C-1", "C-2", "C-3"];
    let mut issues: Vec<IssueSpec> = TODO
        .iter()
        .enumerate()
        .map(|(i, id)| spec(id, i as u8 + 1, &[], 3))
        .collect();
    issues.push(IssueSpec {
        priority: Some(4),
        ..IssueSpec::new("C-4", "In Progress", "Slow. [demo:sleep=15]")
    });
    let project = Project::new(&issues, "  max_concurrent_agents_by_state:\n    Todo: 1\n", "");
    let ctl = ControllerProcess::start(&project.workflow, &project.state_dir, &[])
        .await
        .expect("controller starts");
    let api = Api::new(&ctl.api(), None);
    let t = Setup { project, ctl, api };

    // While one Todo issue runs, another waits for the state's cap, not for a slot.
    eventually("a Todo issue waiting with per_state_limit", || async {
        let issues = t.api.get("/issues").await.ok()?;
        issues
            .as_array()?
            .iter()
            .any(|i| TODO.contains(&s(i, "identifier")) && i["ineligibleReason"] == "per_state_limit")
            .then_some(())
    })
    .await;

    let most_todo = std::cell::Cell::new(0);
    let beside = std::cell::Cell::new(false);
    let st = t
        .wait("all four succeeded", |s| {
            let todo = TODO.iter().filter(|id| snap::running(s, id).is_some()).count();
            most_todo.set(most_todo.get().max(todo));
            if todo > 0 && snap::running(s, "C-4").is_some() {
                beside.set(true);
            }
            TODO.iter()
                .chain(&["C-4"])
                .all(|id| snap::history(s, id).first().is_some_and(|h| h["status"] == "succeeded"))
        })
        .await;
    let most = most_todo.get();
    assert!(most <= 1, "cap todo: 1, but {most} Todo issues ran at once");
    assert!(beside.get(), "the In Progress issue never ran beside a Todo issue");

    // The runs' own times agree: the Todo runs never overlap, the In Progress run overlaps one of them.
    let mut todo: Vec<_> = TODO.iter().map(|id| (span(&st, id), *id)).collect();
    todo.sort();
    for pair in todo.windows(2) {
        let (((_, end), a), ((start, _), b)) = (pair[0], pair[1]);
        assert!(start >= end, "{b} started at {start} before {a} finished at {end}");
    }
    let (c4_start, c4_end) = span(&st, "C-4");
    assert!(
        todo.iter().any(|((start, end), _)| *start < c4_end && c4_start < *end),
        "C-4 ran {c4_start}..{c4_end}, beside no Todo run: {todo:?}"
    );
    for id in TODO.iter().chain(&["C-4"]) {
        t.wait_tracker_state(id, "Done").await;
    }
}
