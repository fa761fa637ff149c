//! Outages around a running session on an SSH host: the host's sshd dies and comes back, or the
//! controller crashes and restarts. Either way the agent keeps running under its supervisor, the
//! controller re-attaches, and the session finishes on that same host with every journal entry
//! delivered exactly once and no second attempt.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use itervox_tests::sse::SseStream;
use serde_json::Value;

use super::harness::{Controlled, Fleet, PATIENCE, Setup, history, running};

/// The seqs of the `log` events in a session's journal on a host (both journal files).
fn journal_log_seqs(home: &Path, session: &str) -> anyhow::Result<Vec<u64>> {
    let dir = home.join(".itervox/workspaces/.itervox/sessions").join(session);
    let mut seqs = Vec::new();
    for name in ["journal.1.jsonl", "journal.jsonl"] {
        let Ok(text) = fs_err::read_to_string(dir.join(name)) else {
            continue;
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)?;
            // A journal line is a session event, possibly inside a frame.
            let event = if v.get("seq").is_some() { &v } else { &v["event"] };
            if event["type"] == "log"
                && let Some(seq) = event["seq"].as_u64()
            {
                seqs.push(seq);
            }
        }
    }
    anyhow::ensure!(!seqs.is_empty(), "no journal with log events in {}", dir.display());
    Ok(seqs)
}

/// The seqs of the controller's log entries of `session`, in the order the API returns them.
fn delivered_seqs(logs: &[Value], session: &str) -> Vec<u64> {
    logs.iter()
        .filter(|e| e["sessionId"] == session)
        .filter_map(|e| e["seq"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_its_hosts_sshd_dying_and_finishes_there_exactly_once() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(&["127.0.0.8", "127.0.0.10"])?;
    let names = fleet.names();
    let c = Controlled::start(&fleet.lab, &Setup::new(names.clone(), "round-robin", 0), &[]).await?;
    c.wait_all_up(&names).await?;
    c.add_issue("T-1", "Keep going for a while. [demo:sleep=25]")?;

    let s = c
        .api
        .wait_state(PATIENCE, "T-1 running with a session", |s| {
            running(s, "T-1").is_some_and(|r| r["sessionId"].as_str().is_some_and(|x| !x.is_empty()))
        })
        .await?;
    let row = running(&s, "T-1").expect("running").clone();
    let host_name = row["workerHost"].as_str().unwrap_or_default().to_string();
    let session = row["sessionId"].as_str().unwrap_or_default().to_string();
    let idx = names
        .iter()
        .position(|n| *n == host_name)
        .ok_or_else(|| anyhow::anyhow!("T-1 runs on {host_name}, not a lab host"))?;

    // Some entries have arrived: the session is following.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while delivered_seqs(&c.logs("T-1").await?, &session).is_empty() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no log entry of {session} arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // A live follower of the issue's log stream, across the outage.
    let live = Arc::new(Mutex::new(Vec::<u64>::new()));
    let mut stream = SseStream::open(&format!("{}/issues/T-1/log-stream", c.api.base), &[]).await?;
    let follower = {
        let (live, session) = (live.clone(), session.clone());
        tokio::spawn(async move {
            while let Some(ev) = stream.next(PATIENCE * 2).await {
                let Ok(entry) = serde_json::from_str::<Value>(&ev.data) else {
                    continue;
                };
                if ev.event.as_deref() == Some("log")
                    && entry["sessionId"] == session
                    && let Some(seq) = entry["seq"].as_u64()
                {
                    live.lock().unwrap_or_else(|e| e.into_inner()).push(seq);
                }
            }
        })
    };

    // The host's sshd and every connection it serves die; the agent's supervisor lives on.
    fleet.hosts[idx].stop()?;
    let down = c.wait_host(&host_name, "down", |r| r["status"] == "down").await?;
    assert!(
        down["lastError"].as_str().is_some_and(|e| !e.is_empty()),
        "a down host says why: {down}"
    );
    // While the host is away the agent keeps writing its journal there, which nobody reads yet.
    let home = fleet.hosts[idx].home().to_path_buf();
    let before = delivered_seqs(&c.logs("T-1").await?, &session).len();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while journal_log_seqs(&home, &session).map(|s| s.len()).unwrap_or(0) <= before + 1 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the agent wrote nothing while its host's sshd was down"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let s = c.api.state().await?;
    assert_eq!(
        running(&s, "T-1").map(|r| r["sessionId"].clone()),
        Some(Value::String(session.clone())),
        "the run waits for its host; it is neither retried nor moved: {}",
        s["retrying"]
    );

    fleet.hosts[idx].start()?;
    c.wait_host(&host_name, "up again", |r| r["status"] == "up").await?;
    let s = c.wait_finished(&["T-1"], "succeeded").await?;

    let rows = history(&s, "T-1");
    assert_eq!(rows.len(), 1, "one attempt, no second one: {rows:?}");
    assert_eq!(rows[0]["workerHost"], host_name, "finished on the host it started on");
    assert_eq!(rows[0]["sessionId"], session);
    assert!(
        s["retrying"].as_array().is_some_and(|r| r.is_empty()),
        "{}",
        s["retrying"]
    );

    // Exactly once: the controller holds each of the journal's log events once, in order.
    let delivered = delivered_seqs(&c.logs("T-1").await?, &session);
    let journal = journal_log_seqs(&home, &session)?;
    assert!(
        delivered.windows(2).all(|w| w[0] < w[1]),
        "entries arrive in seq order without duplicates: {delivered:?}"
    );
    assert_eq!(
        delivered, journal,
        "the controller's entries of {session} are exactly the journal's log events"
    );
    let distinct: BTreeSet<u64> = delivered.iter().copied().collect();
    assert_eq!(distinct.len(), delivered.len());
    assert!(
        delivered.len() > before,
        "entries written during the outage were delivered"
    );

    // The live follower saw each entry once too: the journal's tail from where it joined, in order.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let live = loop {
        let seen = live.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if seen.last() == journal.last() || tokio::time::Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    follower.abort();
    assert!(
        journal.ends_with(&live) && live.len() >= journal.len() - before,
        "the live stream saw {live:?}; the journal holds {journal:?} ({before} delivered before the outage)"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_outlives_a_controller_crash_and_is_reattached_over_ssh_exactly_once() -> anyhow::Result<()> {
    let fleet = Fleet::start(&["127.0.0.18"])?;
    let names = fleet.names();
    let mut c = Controlled::start(&fleet.lab, &Setup::new(names.clone(), "round-robin", 0), &[]).await?;
    c.wait_all_up(&names).await?;
    c.add_issue("T-1", "Keep going for a while. [demo:sleep=25]")?;
    let s = c
        .api
        .wait_state(PATIENCE, "T-1 running with a session", |s| {
            running(s, "T-1").is_some_and(|r| r["sessionId"].as_str().is_some_and(|x| !x.is_empty()))
        })
        .await?;
    let session = running(&s, "T-1").expect("running")["sessionId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while delivered_seqs(&c.logs("T-1").await?, &session).is_empty() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no log entry of {session} arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The controller dies; the agent on the host does not.
    c.controller.kill9().await;
    let home = fleet.hosts[0].home().to_path_buf();
    let at_crash = journal_log_seqs(&home, &session)?.len();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while journal_log_seqs(&home, &session)?.len() <= at_crash + 1 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the agent stopped writing when the controller died"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    c.restart().await?;
    let s = c.wait_finished(&["T-1"], "succeeded").await?;
    let rows = history(&s, "T-1");
    assert_eq!(rows.len(), 1, "the same session finished; no second attempt: {rows:?}");
    assert_eq!(rows[0]["sessionId"], session);
    assert_eq!(rows[0]["workerHost"], names[0]);
    let delivered = delivered_seqs(&c.logs("T-1").await?, &session);
    assert_eq!(
        delivered,
        journal_log_seqs(&home, &session)?,
        "each journal entry is stored exactly once across the crash"
    );
    Ok(())
}
