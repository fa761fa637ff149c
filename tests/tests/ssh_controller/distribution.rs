//! Placement across three real SSH hosts: round-robin spreads issues, least-loaded picks the emptiest
//! host where round-robin would not, the per-host cap holds in every sampled snapshot, and issues wait
//! (never run on the controller's machine) while every host is full.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use itervox_tests::controller::Api;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::harness::{Controlled, Fleet, PATIENCE, Setup, history, running, running_per_host};

/// What a background reader of `/state` saw.
#[derive(Debug, Default)]
struct Samples {
    count: u32,
    /// Most sessions seen at once on each host.
    peak: BTreeMap<String, u32>,
    violations: Vec<String>,
}

/// Reads `/state` every 50 ms until `stop`, checking every snapshot: each running row is on one of
/// `hosts`, and no host runs more than `cap` sessions.
fn sample(api: Api, hosts: Vec<String>, cap: u32, stop: CancellationToken) -> tokio::task::JoinHandle<Samples> {
    tokio::spawn(async move {
        let mut out = Samples::default();
        while !stop.is_cancelled() {
            if let Ok(s) = api.state().await {
                out.count += 1;
                for (host, n) in running_per_host(&s) {
                    if !hosts.contains(&host) {
                        out.violations
                            .push(format!("a session runs on {host:?}, not a lab host: {}", s["running"]));
                    }
                    if n > cap {
                        out.violations
                            .push(format!("{host} runs {n} sessions, cap {cap}: {}", s["running"]));
                    }
                    let peak = out.peak.entry(host).or_default();
                    *peak = (*peak).max(n);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        out
    })
}

/// `workerHost` of an issue's newest history row.
fn finished_on(s: &Value, id: &str) -> String {
    history(s, id)
        .first()
        .and_then(|r| r["workerHost"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_issues_and_full_hosts_make_issues_wait() -> anyhow::Result<()> {
    let fleet = Fleet::start(&["127.0.0.2", "127.0.0.3", "127.0.0.4"])?;
    let names = fleet.names();
    // The worker is uploaded to each host by the controller, as on fresh build machines.
    let setup = Setup {
        install_worker: true,
        ..Setup::new(names.clone(), "round-robin", 1)
    };
    let c = Controlled::start(&fleet.lab, &setup, &[]).await?;
    c.wait_all_up(&names).await?;
    for h in &names {
        let row = &c.hosts().await?[h];
        assert_eq!(row["capacity"], 1, "{row}");
        assert!(
            row["workerVersion"].as_str().is_some_and(|v| !v.is_empty()),
            "an up host reports its worker: {row}"
        );
    }

    let stop = CancellationToken::new();
    let sampler = sample(c.api.clone(), names.clone(), 1, stop.clone());
    let ids = ["T-1", "T-2", "T-3", "T-4", "T-5"];
    for id in ids {
        c.add_issue(id, "Do the thing. [demo:sleep=20]")?;
    }

    // Three slots, five issues: the first three run one per host, in round-robin order.
    let s = c
        .api
        .wait_state(PATIENCE, "three sessions running", |s| {
            s["running"].as_array().is_some_and(|r| r.len() == 3)
        })
        .await?;
    let first: BTreeSet<String> = ["T-1", "T-2", "T-3"]
        .iter()
        .map(|id| running(&s, id).map(|r| r["workerHost"].as_str().unwrap_or_default().to_string()))
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow::anyhow!("T-1..T-3 should run first: {}", s["running"]))?;
    assert_eq!(first, names.iter().cloned().collect(), "one issue per host");
    assert_eq!(
        running(&s, "T-1").unwrap()["workerHost"],
        names[0],
        "round-robin starts at the first host"
    );
    assert_eq!(running(&s, "T-2").unwrap()["workerHost"], names[1]);
    assert_eq!(running(&s, "T-3").unwrap()["workerHost"], names[2]);

    // The other two wait for a host, visibly, and are not run anywhere else.
    let waiting = c.api.get("/issues/T-4").await?;
    assert!(
        running(&s, "T-4").is_none() && running(&s, "T-5").is_none(),
        "{}",
        s["running"]
    );
    assert_eq!(waiting["orchestratorState"], "idle", "{waiting}");
    assert!(
        waiting["ineligibleReason"].as_str().is_some_and(|r| r.contains("host")),
        "the waiting issue says it waits for a host: {waiting}"
    );

    let s = c.wait_finished(&ids, "succeeded").await?;
    stop.cancel();
    let samples = sampler.await?;
    assert!(samples.violations.is_empty(), "{:#?}", samples.violations);
    assert!(
        samples.count > 20,
        "the sampler read /state only {} times",
        samples.count
    );

    // Every run ran on a lab host, and the two that waited started only after a slot on their host freed.
    let rows: Vec<&Value> = ids.iter().map(|id| history(&s, id)[0]).collect();
    for row in &rows {
        assert!(names.iter().any(|n| row["workerHost"] == *n), "{row}");
        assert_eq!(
            history(&s, row["identifier"].as_str().unwrap()).len(),
            1,
            "one attempt each: {row}"
        );
    }
    for late in &rows[3..] {
        let host = &late["workerHost"];
        let started = late["startedAt"].as_str().unwrap_or_default();
        let before: Vec<&&Value> = rows[..3].iter().filter(|r| &r["workerHost"] == host).collect();
        assert!(
            before
                .iter()
                .all(|r| r["finishedAt"].as_str().unwrap_or_default() <= started),
            "{} started on {host} before the earlier run there finished: {before:?} vs {late}",
            late["identifier"]
        );
    }
    // Nothing ran on the controller's own machine: each worktree is under its host's HOME, next to the
    // worker the controller uploaded there.
    for (i, host) in fleet.hosts.iter().enumerate() {
        let worker = host.home().join(".local/bin/itervox-worker");
        assert!(worker.is_file(), "the worker was installed at {}", worker.display());
        let on_host: Vec<&str> = rows
            .iter()
            .filter(|r| r["workerHost"] == names[i])
            .filter_map(|r| r["identifier"].as_str())
            .collect();
        for id in on_host {
            let wt = host.home().join(".itervox/workspaces").join(id);
            assert!(wt.is_dir(), "{id}'s worktree is on {} at {}", names[i], wt.display());
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_loaded_picks_an_idle_host_where_round_robin_would_not() -> anyhow::Result<()> {
    let fleet = Fleet::start(&["127.0.0.5", "127.0.0.6", "127.0.0.7"])?;
    let names = fleet.names();
    let c = Controlled::start(&fleet.lab, &Setup::new(names.clone(), "round-robin", 2), &[]).await?;
    c.wait_all_up(&names).await?;
    let stop = CancellationToken::new();
    let sampler = sample(c.api.clone(), names.clone(), 2, stop.clone());

    // A long run on the first host, two short ones on the others.
    c.add_issue("T-1", "Long. [demo:sleep=200]")?;
    c.add_issue("T-2", "Short. [demo:sleep=1]")?;
    c.add_issue("T-3", "Short. [demo:sleep=1]")?;
    let s = c.wait_finished(&["T-2", "T-3"], "succeeded").await?;
    let long = running(&s, "T-1").expect("T-1 still runs")["workerHost"].clone();
    assert_eq!(long, names[0]);
    assert_eq!(finished_on(&s, "T-2"), names[1]);
    assert_eq!(finished_on(&s, "T-3"), names[2]);

    // Round-robin comes back to the first host although it is the busiest.
    c.add_issue("T-4", "Short. [demo:sleep=1]")?;
    let s = c.wait_finished(&["T-4"], "succeeded").await?;
    assert_eq!(
        finished_on(&s, "T-4"),
        names[0],
        "round-robin's next host is the first again"
    );
    assert!(
        running(&s, "T-1").is_some(),
        "T-1 must still run for this test to mean anything"
    );

    // Least-loaded avoids it.
    let (status, body) = c
        .api
        .call(
            "PUT",
            "/settings/dispatch-strategy",
            Some(json!({"strategy": "least-loaded"})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    c.api
        .wait_state(PATIENCE, "the strategy to apply", |s| {
            s["dispatchStrategy"] == "least-loaded"
        })
        .await?;
    c.add_issue("T-5", "Short. [demo:sleep=1]")?;
    let s = c.wait_finished(&["T-5"], "succeeded").await?;
    assert!(
        running(&s, "T-1").is_some(),
        "T-1 must still run for this test to mean anything"
    );
    let host = finished_on(&s, "T-5");
    assert!(
        host == names[1] || host == names[2],
        "least-loaded put T-5 on {host}, not on an idle host ({} or {})",
        names[1],
        names[2]
    );

    stop.cancel();
    let samples = sampler.await?;
    assert!(samples.violations.is_empty(), "{:#?}", samples.violations);
    // T-1 only had to outlast the others.
    let (status, body) = c.api.call("POST", "/issues/T-1/cancel", None).await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_question_waits_for_a_free_slot_on_the_host_that_holds_its_session() -> anyhow::Result<()> {
    let fleet = Fleet::start(&["127.0.0.17"])?;
    let names = fleet.names();
    let host = names[0].clone();
    let c = Controlled::start(&fleet.lab, &Setup::new(names.clone(), "round-robin", 1), &[]).await?;
    c.wait_all_up(&names).await?;
    let stop = CancellationToken::new();
    let sampler = sample(c.api.clone(), names.clone(), 1, stop.clone());

    // T-1 asks a question, which frees the host's only slot; T-2 takes it.
    c.add_issue("T-1", "Ask first. [demo:needs-input] [demo:sleep=1]")?;
    let s = c
        .api
        .wait_state(PATIENCE, "T-1 to ask", |s| {
            s["inputRequired"]
                .as_array()
                .is_some_and(|r| r.iter().any(|i| i["identifier"] == "T-1"))
        })
        .await?;
    let question = s["inputRequired"]
        .as_array()
        .and_then(|r| r.iter().find(|i| i["identifier"] == "T-1"))
        .cloned()
        .unwrap_or_default();
    c.add_issue("T-2", "Long. [demo:sleep=25]")?;
    c.api
        .wait_state(PATIENCE, "T-2 running", |s| {
            running(s, "T-2").is_some_and(|r| r["workerHost"] == host)
        })
        .await?;

    // The answer arrives while the host is full: the resume waits for the slot instead of overfilling it.
    let (status, body) = c
        .api
        .call(
            "POST",
            "/issues/T-1/provide-input",
            Some(json!({"message": "Use the blue one."})),
        )
        .await?;
    assert_eq!(status, 202, "{body}");
    // While T-2 holds the slot, the answered issue says why it has not resumed.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let waiting = c.api.get("/issues/T-1").await?;
        if waiting["ineligibleReason"] == "waiting_for_host" {
            break;
        }
        let s = c.api.state().await?;
        anyhow::ensure!(
            running(&s, "T-2").is_some() && tokio::time::Instant::now() < deadline,
            "T-1 never said it waits for its host: {waiting}; running: {}",
            s["running"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = c
        .api
        .wait_state(PATIENCE * 2, "T-1 resumed", |s| running(s, "T-1").is_some())
        .await?;
    let resumed = running(&s, "T-1").cloned().unwrap_or_default();
    assert!(running(&s, "T-2").is_none(), "T-1 resumed beside T-2: {}", s["running"]);
    assert_eq!(history(&s, "T-2")[0]["status"], "succeeded");
    assert_eq!(resumed["workerHost"], host, "the answer goes to the session's host");
    assert_eq!(
        resumed["sessionId"], question["sessionId"],
        "the same agent session continues"
    );
    c.wait_finished(&["T-1"], "succeeded").await?;

    stop.cancel();
    let samples = sampler.await?;
    assert!(samples.violations.is_empty(), "{:#?}", samples.violations);
    Ok(())
}
