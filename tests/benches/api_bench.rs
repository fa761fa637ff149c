//! `api_bench`: what the `/api/v1` surface costs on a busy controller. Run with
//! `cargo bench -p itervox-tests --bench api_bench` (after `cargo build --workspace --bins`);
//! `-- --quick` runs fewer rounds.
//!
//! Sets up a real controller with 1,000 tracked issues (100 running demo sessions) and 200 finished runs, then
//! measures (a) `GET /state` latency p50/p99 at several client concurrencies, and (b) 200 concurrent
//! `/events` SSE clients: the controller's resident memory before and after they connect, and the
//! delivery lag from a settings change to each client's frame showing it. Prints a table; asserts
//! nothing about speed. Numbers are recorded in docs/api-benchmarks.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use itervox::store::{RunRecord, RunState, Store};
use itervox_tests::controller::{Api, ControllerProcess};
use itervox_tests::project::{IssueSpec, Project};
use itervox_tests::sse::SseStream;

const RUNNING: usize = 100;
/// Tracked issues beyond the running ones: eligible, waiting for a slot (1,000 tracked in all).
const WAITING: usize = 900;
const HISTORY: usize = 200;
const SSE_CLIENTS: usize = 200;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Resident memory of a process in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn seed_history(project: &Project) -> anyhow::Result<()> {
    std::fs::create_dir_all(&project.state_dir)?;
    let store = Store::open(&project.state_dir.join("itervox.db"))?;
    let now = Utc::now();
    for i in 0..HISTORY {
        let started = now - chrono::Duration::minutes(10 + i as i64);
        store.insert_run(&RunRecord {
            run_id: format!("hist-{i}"),
            identifier: format!("H-{i}"),
            title: Some(format!("Finished issue number {i} with a realistic title")),
            attempt: 1,
            kind: "worker".into(),
            host: "local".into(),
            session_id: format!("H-{i}-session"),
            workspace: None,
            backend: "claude".into(),
            profile: None,
            status: if i % 7 == 0 {
                RunState::Failed
            } else {
                RunState::Succeeded
            },
            started_at: started,
            finished_at: Some(started + chrono::Duration::minutes(4)),
            turn_count: 12,
            input_tokens: 120_000,
            output_tokens: 8_000,
            cost_usd: Some(0.42),
            error: (i % 7 == 0).then(|| "the agent exited with status 1".to_string()),
            last_seq: 40,
            agent_ref: None,
            pr_url: Some(format!("https://example.invalid/pr/{i}")),
            branch: Some(format!("itervox/h-{i}")),
            issue_state: Some("Todo".into()),
            resumed: false,
        })?;
    }
    Ok(())
}

/// `GET /state` `total` times from `concurrency` clients; the sorted latencies.
async fn state_latencies(url: &str, concurrency: usize, total: usize) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, url) = (client.clone(), next.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                let t = Instant::now();
                let resp = client.get(&url).send().await?;
                anyhow::ensure!(resp.status() == 200, "GET /state: {}", resp.status());
                let _ = resp.bytes().await?;
                out.push(t.elapsed());
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let wall = started.elapsed();
    all.sort();
    Ok((all, wall))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let quick = std::env::args().any(|a| a == "--quick");
    let requests = if quick { 300 } else { 2_000 };
    let lag_rounds = if quick { 3 } else { 10 };

    let mut issues: Vec<IssueSpec> = (0..RUNNING)
        .map(|i| {
            let mut spec = IssueSpec::new(&format!("R-{i}"), "Todo", "[demo:sleep=3600]");
            spec.priority = Some(1);
            spec
        })
        .collect();
    issues.extend((0..WAITING).map(|i| {
        let mut spec = IssueSpec::new(&format!("W-{i}"), "Todo", "[demo:sleep=3600]");
        spec.priority = Some(4);
        spec
    }));
    let project = Project::new(&issues, "", "");
    let text = std::fs::read_to_string(&project.workflow)?
        .replace("max_concurrent_agents: 6", &format!("max_concurrent_agents: {RUNNING}"))
        .replace("interval_ms: 300", "interval_ms: 5000");
    std::fs::write(&project.workflow, text)?;
    seed_history(&project)?;

    let mut controller = ControllerProcess::start(&project.workflow, &project.state_dir, &[]).await?;
    let pid = controller.pid().context("controller pid")?;
    let api = Api::new(&controller.api(), None);
    let state = api
        .wait_state(Duration::from_secs(600), "all slots running", |s| {
            s["running"].as_array().is_some_and(|r| r.len() == RUNNING)
                && s["history"].as_array().is_some_and(|h| h.len() >= HISTORY)
        })
        .await?;
    let snapshot_bytes = serde_json::to_vec(&state)?.len();
    println!(
        "controller pid {pid}: {} tracked issues, {} running, {} history rows, snapshot {:.1} KiB",
        RUNNING + WAITING,
        state["running"].as_array().map_or(0, Vec::len),
        state["history"].as_array().map_or(0, Vec::len),
        snapshot_bytes as f64 / 1024.0
    );
    // Let the dispatch burst settle.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut rows: Vec<(String, String)> = Vec::new();
    let url = format!("{}/state", controller.api());
    for concurrency in [1usize, 16, 64] {
        let (lat, wall) = state_latencies(&url, concurrency, requests).await?;
        rows.push((
            format!("GET /state, {concurrency} concurrent clients"),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {:.0} req/s ({} requests)",
                ms(percentile(&lat, 0.50)),
                ms(percentile(&lat, 0.99)),
                ms(*lat.last().unwrap()),
                lat.len() as f64 / wall.as_secs_f64(),
                lat.len()
            ),
        ));
    }

    // 200 SSE clients.
    let rss_before = rss_kib(pid).unwrap_or(0);
    let events_url = format!("{}/events", controller.api());
    let mut clients = Vec::new();
    for _ in 0..SSE_CLIENTS {
        let mut s = SseStream::open(&events_url, &[]).await?;
        if s.next(Duration::from_secs(30)).await.is_none() {
            bail!("an SSE client got no first frame");
        }
        clients.push(s);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = rss_kib(pid).unwrap_or(0);
    let mut lags: Vec<Duration> = Vec::new();
    let mut lags_after_answer: Vec<Duration> = Vec::new();
    let mut rss_peak = rss_connected;
    let mut workers = RUNNING as i64;
    for _ in 0..lag_rounds {
        workers += 1;
        let want = format!("\"maxConcurrentAgents\":{workers},");
        // Each client reads in its own task, so the clients' own parsing runs in parallel as it would
        // in 200 browsers, and each arrival is timed where it happens.
        let sent = Instant::now();
        let waits: Vec<_> = clients
            .drain(..)
            .map(|mut c| {
                let want = want.clone();
                tokio::spawn(async move {
                    loop {
                        let Some(ev) = c.next(Duration::from_secs(60)).await else {
                            return (c, None);
                        };
                        if ev.data.contains(&want) {
                            return (c, Some(Instant::now()));
                        }
                    }
                })
            })
            .collect();
        let (status, _) = api
            .call(
                "POST",
                "/settings/workers",
                Some(serde_json::json!({ "workers": workers })),
            )
            .await?;
        let answered = Instant::now();
        anyhow::ensure!(status == 200, "POST /settings/workers: {status}");
        for w in waits {
            let (c, arrived) = w.await?;
            let arrived = arrived.context("an SSE client missed the change")?;
            lags.push(arrived - sent);
            lags_after_answer.push(arrived.saturating_duration_since(answered));
            clients.push(c);
        }
        rss_peak = rss_peak.max(rss_kib(pid).unwrap_or(0));
    }
    lags_after_answer.sort();
    lags.sort();
    rows.push((
        format!("/events: delivery lag to all {SSE_CLIENTS} clients"),
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} deliveries, {lag_rounds} changes)",
            ms(percentile(&lags, 0.50)),
            ms(percentile(&lags, 0.99)),
            ms(*lags.last().unwrap()),
            lags.len()
        ),
    ));
    rows.push((
        "/events: lag after the settings call answered".to_string(),
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(percentile(&lags_after_answer, 0.50)),
            ms(percentile(&lags_after_answer, 0.99)),
            ms(*lags_after_answer.last().unwrap()),
        ),
    ));
    rows.push((
        format!("controller RSS, {SSE_CLIENTS} SSE clients"),
        format!(
            "{:.1} MiB before, {:.1} MiB connected, {:.1} MiB peak during changes (+{:.1} KiB per client)",
            rss_before as f64 / 1024.0,
            rss_connected as f64 / 1024.0,
            rss_peak as f64 / 1024.0,
            (rss_connected.saturating_sub(rss_before)) as f64 / SSE_CLIENTS as f64
        ),
    ));
    drop(clients);

    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!("\n{:<w$}  result", "measure");
    println!("{}  {}", "-".repeat(w), "-".repeat(40));
    for (a, b) in &rows {
        println!("{a:<w$}  {b}");
    }
    controller.terminate().await?;
    Ok(())
}
