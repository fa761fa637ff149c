//! `controller_bench`: what the whole path costs — a real `itervox` controller, a real lab `sshd` host
//! and the demo agent. Run with `cargo bench -p itervox-tests --bench controller_bench` (as root, like the
//! SSH tests, after `cargo build --release --workspace --bins`; or add `--profile dev` to measure the
//! debug build in `target/debug`); `-- --quick` runs fewer rounds, `-- --only-replay` only (c) and (d).
//!
//! Measures (a) dispatch latency on a warm connection: from `POST /api/v1/refresh` (a new issue in the
//! tracker) to the first log entry from the host arriving on the issue's `/log-stream` (the worker's
//! progress entry as it starts preparing the worktree), and on to the agent's first journaled entry;
//! (b) log throughput at the demo agent's speed (`[demo:spam=N]`), from the worker through SSH and the
//! controller to an SSE client of `/log-stream`, in entries/s and MB/s, next to `ssh host cat file` of
//! as many 200-byte lines, and how fast the host itself parsed and journaled the entries (their own
//! times); (c) the same path at the worker's speed, in rounds: the host's sshd is stopped while a session
//! runs, the session finishes on the host, and when sshd is back the controller re-attaches and the
//! journal streams through; next to it the steady rate of `ssh host cat` of that same journal (median of
//! three), the ratio of entries/s to lines/s, and the CPU each side used; (d) a new `/log-stream` client
//! reading the issue's stored entries. Like `ssh host cat` read line by line, the SSE client frames the
//! events without parsing their JSON. Prints a table; asserts nothing about speed. `BENCH_LOG=debug`
//! sets the controller's `ITERVOX_LOG` and `BENCH_DUMP=file` writes its output there after (a) (the
//! run's timing notes are at debug level).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use itervox_tests::binaries::bin_path;
use itervox_tests::controller::{Api, ControllerProcess};
use itervox_tests::openssh::OpenSsh;
use itervox_tests::project::Project;
use itervox_tests::sse::SseStream;
use itervox_tests::sshd::{SshHost, SshLab};
use serde_json::Value;

const LINE_BYTES: usize = 200;
const PATIENCE: Duration = Duration::from_secs(120);

struct Rounds {
    dispatches: usize,
    spam: usize,
    /// Entries of the session replayed in (c).
    replay: usize,
    /// Sessions replayed in (c).
    replay_rounds: usize,
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let only_replay = std::env::args().any(|a| a == "--only-replay");
    let rounds = if only_replay {
        Rounds {
            dispatches: 0,
            spam: 0,
            replay: if quick { 20_000 } else { 200_000 },
            replay_rounds: 3,
        }
    } else if quick {
        Rounds {
            dispatches: 3,
            spam: 2_000,
            replay: 20_000,
            replay_rounds: 1,
        }
    } else {
        Rounds {
            dispatches: 10,
            spam: 20_000,
            replay: 200_000,
            replay_rounds: 3,
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    // One thread, like a browser tab: a multi-threaded client hands every SSE chunk from hyper's
    // connection task to the reader on another thread and becomes the slowest part of the path.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(rounds))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A file of the tracker: an issue in Todo that the demo agent finishes at once.
fn write_issue(project: &Project, id: &str, body: &str) -> anyhow::Result<()> {
    let text =
        format!("---\nidentifier: {id}\ntitle: Bench {id}\nstate: Todo\ncreated: 2026-12-01T09:00:00Z\n---\n{body}\n");
    fs_err::write(project.issues_dir.join(format!("{id}.md")), text)?;
    Ok(())
}

/// Waits until `id` has a finished history row.
async fn wait_finished(api: &Api, id: &str) -> anyhow::Result<Value> {
    api.wait_state(PATIENCE, &format!("{id} to finish"), |s| {
        s["history"]
            .as_array()
            .is_some_and(|h| h.iter().any(|r| r["identifier"] == id))
    })
    .await
}

async fn run(rounds: Rounds) -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let mut host = lab.start_host("127.0.0.2")?;
    lab.trust(&host)?;
    let ssh = lab.ssh_config();
    let project = Project::new(&[], "", "");
    // Only /refresh polls the tracker during the bench; the host keeps its workspaces under its HOME.
    let ssh_yaml = format!(
        "ssh:\n  user: root\n  identity_file: {key}\n  known_hosts: {kh}\n  strict_host_key_checking: yes\n  \
         worker_path: {worker}\n",
        key = ssh.identity_file.as_ref().context("lab key")?.display(),
        kh = ssh.known_hosts.display(),
        worker = bin_path("itervox-worker").display(),
    );
    let text = fs_err::read_to_string(&project.workflow)?
        .replace(
            &format!("root: {}", project.workspaces.display()),
            "root: ~/.itervox/workspaces",
        )
        .replace("interval_ms: 300", "interval_ms: 3600000")
        .replace(
            "  inline_input: true\n",
            &format!("  inline_input: true\n  ssh_hosts: [{}]\n", host.spec()),
        )
        .replacen("---\nWork on", &format!("{ssh_yaml}---\nWork on"), 1);
    fs_err::write(&project.workflow, text)?;
    let ctl = ControllerProcess::start(
        &project.workflow,
        &project.state_dir,
        &[("ITERVOX_LOG", &std::env::var("BENCH_LOG").unwrap_or("warn".into()))],
    )
    .await?;
    let api = Api::new(&ctl.api(), None);
    api.wait_state(PATIENCE, "the host to be up", |s| {
        s["sshHosts"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["status"] == "up"))
    })
    .await?;
    println!(
        "controller_bench: itervox controller ({} build) → OpenSSH sshd on {} → itervox-worker → demo agent",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        host.spec()
    );

    let mut rows: Vec<Row> = Vec::new();
    if rounds.dispatches > 0 {
        // (a) Dispatch latency: a new issue, POST /refresh, then on /log-stream the first entry the host sent
        // (the worker's "preparing the worktree" progress entry) and the agent's first journaled entry.
        let mut host_samples = Vec::new();
        let mut agent_samples = Vec::new();
        for i in 0..=rounds.dispatches {
            let id = format!("BENCH-{}", i + 1);
            write_issue(&project, &id, "Benchmark dispatch [demo:sleep=0]")?;
            let mut stream = SseStream::open(&format!("{}/issues/{id}/log-stream", ctl.api()), &[]).await?;
            let started = Instant::now();
            let (status, body) = api.call("POST", "/refresh", None).await?;
            if status >= 300 {
                bail!("POST /refresh: {status} {body}");
            }
            let mut from_host = None;
            let from_agent = loop {
                let Some(event) = stream.next(PATIENCE).await else {
                    bail!("no log entry from the host for {id} within {PATIENCE:?}");
                };
                let entry: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                let message = entry["message"].as_str().unwrap_or_default();
                if from_host.is_none() && message.contains(&format!("preparing the worktree of {id}")) {
                    from_host = Some(started.elapsed());
                }
                // Entries the agent's supervisor journaled carry their journal seq; other entries do not.
                if entry["seq"].is_u64() {
                    break started.elapsed();
                }
            };
            let Some(from_host) = from_host else {
                bail!("{id}: the agent's first entry came before any entry from the host's prepare");
            };
            // The first round also opens the mirror on the host; it is the cold one.
            if i > 0 {
                host_samples.push(from_host);
                agent_samples.push(from_agent);
            }
            wait_finished(&api, &id).await?;
        }
        if let Ok(path) = std::env::var("BENCH_DUMP") {
            fs_err::write(path, ctl.output())?;
        }
        let summary = |mut samples: Vec<Duration>| {
            samples.sort();
            let median = samples[samples.len() / 2];
            let p90 = samples[(samples.len() * 9 / 10).min(samples.len() - 1)];
            format!(
                "{:.1} ms median, {:.1} ms min, {:.1} ms p90, {:.1} ms max",
                ms(median),
                ms(samples[0]),
                ms(p90),
                ms(samples[samples.len() - 1]),
            )
        };
        let n = host_samples.len();
        rows.extend([
            (
                "(a) refresh → first entry from the host on /log-stream".to_string(),
                summary(host_samples),
                format!("{n} dispatches (after 1 warm-up)"),
            ),
            (
                "    refresh → the agent's first entry on /log-stream".to_string(),
                summary(agent_samples),
                "the same dispatches (fetch, worktree, agent start)".to_string(),
            ),
        ]);
    }

    if rounds.spam > 0 {
        // (b) Throughput: spam entries from the worker to an SSE client.
        let id = "BENCH-SPAM";
        let n = rounds.spam;
        write_issue(
            &project,
            id,
            &format!("Benchmark throughput [demo:spam={n}] [demo:sleep=0]"),
        )?;
        let mut stream = SseStream::open(&format!("{}/issues/{id}/log-stream", ctl.api()), &[]).await?;
        api.call("POST", "/refresh", None).await?;
        let mut first: Option<Instant> = None;
        let mut count = 0usize;
        let mut bytes = 0usize;
        // When the supervisor on the host parsed the first and the last of them (the entries' own `time`).
        let mut parsed: (
            Option<chrono::DateTime<chrono::FixedOffset>>,
            Option<chrono::DateTime<chrono::FixedOffset>>,
        ) = (None, None);
        while count < n {
            let Some(event) = stream.next(PATIENCE).await else {
                bail!("the log stream stalled after {count} of {n} entries");
            };
            let entry: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            if entry["message"].as_str().is_some_and(|m| m.starts_with("spam ")) {
                first.get_or_insert_with(Instant::now);
                count += 1;
                bytes += event.data.len();
                let at = entry["time"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                if parsed.0.is_none() {
                    parsed.0 = at;
                }
                parsed.1 = at.or(parsed.1);
            }
        }
        let elapsed = first.map(|f| f.elapsed()).unwrap_or_default();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let row_b = (
            "(b) demo agent → worker → SSH → controller → /log-stream SSE".to_string(),
            format!(
                "{:.0} entries/s, {:.2} MB/s of entry JSON",
                count as f64 / secs,
                bytes as f64 / 1_000_000.0 / secs
            ),
            format!(
                "{count} entries ({} bytes each on average) in {secs:.2} s",
                bytes / count.max(1)
            ),
        );
        let on_host = match parsed {
            (Some(a), Some(b)) if b > a => {
                let secs = (b - a).num_milliseconds() as f64 / 1000.0;
                (
                    "    of which: agent → parsed and journaled on the host".to_string(),
                    format!("{:.0} entries/s", count as f64 / secs),
                    format!("first to last entry's own time: {secs:.2} s"),
                )
            }
            _ => (
                "    of which: agent → parsed and journaled on the host".to_string(),
                "(entry times too coarse to tell)".to_string(),
                String::new(),
            ),
        };
        wait_finished(&api, id).await?;

        // The shell-out baseline of ssh_bench: `ssh host cat file` of as many 200-byte lines.
        let file = host.home().join("bench-lines.txt");
        let line = format!("{{\"seq\":0,\"text\":\"{}\"}}\n", "x".repeat(LINE_BYTES - 20));
        fs_err::write(&file, line.repeat(n))?;
        let counted = OpenSsh::new(&lab, &host).count_lines(&format!("cat {}", file.display()))?;
        if counted.lines != n {
            bail!("ssh read {} lines of {n}", counted.lines);
        }
        let row_base = (
            "    baseline: ssh host cat file (shell-out, no controller)".to_string(),
            counted.summary(),
            format!(
                "{} lines of {LINE_BYTES} bytes in {:.2} s ({:.2} s with the ssh start)",
                counted.lines,
                counted.streaming.as_secs_f64(),
                counted.total.as_secs_f64()
            ),
        );
        rows.extend([row_b, on_host, row_base]);
    }

    // (c) and (d), a few rounds: the machine is shared, and one round of a second or less is noisy.
    let mut ratios = Vec::new();
    for round in 1..=rounds.replay_rounds {
        let r = replay(&mut host, &project, &ctl, &api, rounds.replay, round).await?;
        // The baseline streams the very same journal (one line per entry; its rotated first part too, when
        // the session outgrew the rotation size): its steady rate, median of 3.
        let dir = r.journal.parent().context("journal folder")?;
        let files: Vec<String> = ["journal.1.jsonl", "journal.jsonl"]
            .iter()
            .map(|f| dir.join(f))
            .filter(|f| f.exists())
            .map(|f| f.display().to_string())
            .collect();
        let mut counted = Vec::new();
        for _ in 0..3 {
            let c = OpenSsh::new(&lab, &host).count_lines(&format!("cat {}", files.join(" ")))?;
            if c.lines < r.entries {
                bail!(
                    "ssh cat read {} lines of a journal that gave {} entries",
                    c.lines,
                    r.entries
                );
            }
            counted.push(c);
        }
        counted.sort_by_key(|c| c.streaming);
        let base = counted[1];
        let base_rate = base.lines as f64 / base.streaming.as_secs_f64().max(1e-9);
        let rate = r.entries as f64 / r.secs;
        ratios.push(rate / base_rate);
        rows.push((
            format!("(c) host journal → worker → SSH → controller → SSE, round {round}"),
            format!(
                "{rate:.0} entries/s, {:.1} MB/s of entry JSON ({:.0} % of the baseline's lines/s)",
                r.bytes as f64 / 1e6 / r.secs,
                100.0 * rate / base_rate
            ),
            format!(
                "{} entries replayed after sshd came back, in {:.2} s{}; CPU: {}",
                r.entries,
                r.secs,
                if r.gaps > 0 {
                    format!(" ({} gap events)", r.gaps)
                } else {
                    String::new()
                },
                r.cpu
            ),
        ));
        rows.push((
            "    baseline: ssh host cat of that journal file (median of 3)".to_string(),
            base.summary(),
            format!(
                "{} lines, {} bytes in {:.2} s ({:.2} s with the ssh start)",
                base.lines,
                base.bytes,
                base.streaming.as_secs_f64(),
                base.total.as_secs_f64()
            ),
        ));
        rows.push(r.stored_row);
    }
    ratios.sort_by(f64::total_cmp);
    rows.push((
        "(c) whole path / steady ssh host cat, lines per second".to_string(),
        format!(
            "{:.0} % median ({:.0} % to {:.0} %)",
            100.0 * ratios[ratios.len() / 2],
            100.0 * ratios[0],
            100.0 * ratios[ratios.len() - 1]
        ),
        format!("{} rounds", ratios.len()),
    ));
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    println!("\n{:<w0$}  {:<w1$}  sample", "measure", "result");
    println!("{}  {}  {}", "-".repeat(w0), "-".repeat(w1), "-".repeat(20));
    for (a, b, c) in &rows {
        println!("{a:<w0$}  {b:<w1$}  {c}");
    }
    Ok(())
}

type Row = (String, String, String);

/// The message of a demo agent's spam entry (`"message":"spam …"`), found in the entry's JSON text.
fn spam_message(data: &str) -> Option<&str> {
    let at = data.find("\"message\":\"spam ")?;
    Some(&data[at + "\"message\":\"".len()..])
}

/// CPU time so far of every `sshd` and `itervox-worker` process (the lab host's side), by (name, pid).
fn host_cpu() -> std::collections::HashMap<(String, String), f64> {
    let mut out = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if matches!(comm.trim(), "sshd" | "itervox-worker") {
            out.insert((comm.trim().to_string(), pid.clone()), cpu_time(&pid));
        }
    }
    out
}

/// CPU time (user + system, seconds) a process (`self` or a pid) has used so far; 0 when unreadable.
/// `perf record` of the controller, when `ITERVOX_BENCH_PERF` names a folder.
fn perf_during_replay(ctl: &ControllerProcess, round: usize) -> anyhow::Result<Option<std::process::Child>> {
    let (Some(dir), Some(pid)) = (std::env::var_os("ITERVOX_BENCH_PERF"), ctl.pid()) else {
        return Ok(None);
    };
    let out = std::path::Path::new(&dir).join(format!("perf-round-{round}.data"));
    let child = std::process::Command::new("perf")
        .args(["record", "-F", "2999", "-g", "--call-graph", "dwarf,32768", "-p"])
        .arg(pid.to_string())
        .arg("-o")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("running perf (ITERVOX_BENCH_PERF is set)")?;
    // perf needs a moment to attach before the replay starts.
    std::thread::sleep(Duration::from_millis(700));
    Ok(Some(child))
}

fn cpu_time(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) end at its closing parenthesis.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are the 14th and 15th fields of the whole line, the 12th and 13th after the name.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

/// (c) The whole path at the worker's own speed rather than the demo agent's: the host's sshd goes down
/// while a session of `total` spam lines runs, the session finishes on the host meanwhile (its
/// supervisor owns it), and when sshd is back the controller reconnects and re-attaches, and the rest of
/// the journal streams through SSH, the controller (decode, store, hub) and SSE as fast as they carry
/// it. Then (d): a new client reads the issue's stored entries.
async fn replay(
    host: &mut SshHost,
    project: &Project,
    ctl: &ControllerProcess,
    api: &Api,
    total: usize,
    round: usize,
) -> anyhow::Result<Replayed> {
    let id = &format!("BENCH-REPLAY-{round}");
    write_issue(
        project,
        id,
        &format!("Benchmark replay [demo:spam={total}] [demo:sleep=0]"),
    )?;
    let mut stream = SseStream::open(&format!("{}/issues/{id}/log-stream", ctl.api()), &[]).await?;
    api.call("POST", "/refresh", None).await?;
    // Like `ssh host cat` read line by line, the client frames the events and does not parse their JSON:
    // it finds the entry's message by its text.
    let is_spam = |data: &str| spam_message(data).is_some();
    let session = loop {
        let Some(event) = stream.next(PATIENCE).await else {
            bail!("no spam entry for {id} within {PATIENCE:?}");
        };
        if is_spam(&event.data) {
            let entry: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            break entry["sessionId"].as_str().unwrap_or_default().to_string();
        }
    };
    host.stop()?;
    // What was already on its way arrives; then the stream is quiet.
    let mut before = 1usize;
    while let Some(event) = stream.next(Duration::from_millis(500)).await {
        before += usize::from(is_spam(&event.data));
    }
    let journal = host
        .home()
        .join(".itervox/workspaces/.itervox/sessions")
        .join(&session)
        .join("journal.jsonl");
    let deadline = Instant::now() + PATIENCE;
    while !journal_ended(&journal)? {
        if Instant::now() > deadline {
            bail!("the session did not finish on the host within {PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ITERVOX_BENCH_PERF=DIR records the controller with `perf` during the replay only (one
    // `perf.data` per round in DIR), for finding where its CPU goes.
    let perf = perf_during_replay(ctl, round)?;
    host.start()?;
    let cpu_before = (
        cpu_time("self"),
        ctl.pid().map(|p| cpu_time(&p.to_string())),
        host_cpu(),
    );
    let (mut first, mut count, mut bytes) = (None, 0usize, 0usize);
    // Until the session's last spam line; a follower that fell behind past what the controller keeps
    // would get `event: gap` (counted, and shown) instead of the entries it missed.
    let last_line = format!("spam {total} of {total}:");
    let mut gaps = 0usize;
    loop {
        let Some(event) = stream.next(PATIENCE).await else {
            bail!("the replay stalled after {} of {total} entries", before + count);
        };
        if event.event.as_deref() == Some("gap") {
            gaps += 1;
            continue;
        }
        if let Some(message) = spam_message(&event.data) {
            first.get_or_insert_with(Instant::now);
            count += 1;
            bytes += event.data.len();
            if message.starts_with(&last_line) {
                break;
            }
        }
    }
    let secs = first.map(|f| f.elapsed()).unwrap_or_default().as_secs_f64().max(1e-9);
    if let Some(mut perf) = perf {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(perf.id()).unwrap_or(0)),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = perf.wait();
    }
    let client_cpu = cpu_time("self") - cpu_before.0;
    let controller_cpu = ctl
        .pid()
        .map(|p| cpu_time(&p.to_string()))
        .zip(cpu_before.1)
        .map(|(a, b)| a - b);
    let host_used = host_cpu();
    let host = |name: &str| {
        host_used
            .iter()
            .filter(|((comm, _), _)| comm == name)
            .map(|(key, t)| t - cpu_before.2.get(key).copied().unwrap_or(0.0))
            .sum::<f64>()
    };
    let cpu = format!(
        "controller {} s, SSE client {client_cpu:.2} s, host sshd {:.2} s + worker {:.2} s",
        controller_cpu.map_or("?".to_string(), |c| format!("{c:.2}")),
        host("sshd"),
        host("itervox-worker"),
    );
    wait_finished(api, id).await?;
    // A new client of the finished issue: its stored entries from the controller's database over SSE.
    let mut again = SseStream::open(&format!("{}/issues/{id}/log-stream", ctl.api()), &[]).await?;
    let started = Instant::now();
    let (mut stored, mut stored_bytes, mut last) = (0usize, 0usize, started);
    while let Some(event) = again.next(Duration::from_millis(500)).await {
        stored += usize::from(event.event.as_deref() == Some("log"));
        stored_bytes += event.data.len();
        last = Instant::now();
    }
    let stored_secs = (last - started).as_secs_f64().max(1e-9);
    let stored_row = (
        "(d) a new /log-stream client: the issue's stored entries over SSE".to_string(),
        format!(
            "{:.0} entries/s, {:.1} MB/s of entry JSON",
            stored as f64 / stored_secs,
            stored_bytes as f64 / 1e6 / stored_secs
        ),
        format!("{stored} entries (the newest the controller keeps) in {stored_secs:.2} s"),
    );
    Ok(Replayed {
        entries: count,
        bytes,
        secs,
        gaps,
        cpu,
        journal,
        stored_row,
    })
}

/// One round of (c) and (d).
struct Replayed {
    /// Entries that reached the SSE client after the reconnect, their JSON's bytes, in how long.
    entries: usize,
    bytes: usize,
    secs: f64,
    /// `event: gap`s the client got (entries it missed because it fell behind past what is stored).
    gaps: usize,
    /// CPU used meanwhile, by side.
    cpu: String,
    /// The session's journal on the host.
    journal: std::path::PathBuf,
    /// (d)'s row.
    stored_row: Row,
}

/// Whether a session journal's last line is its `session_exit`.
fn journal_ended(path: &std::path::Path) -> anyhow::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Ok(false);
    };
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096)))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    Ok(String::from_utf8_lossy(&tail)
        .trim_end()
        .rsplit('\n')
        .next()
        .is_some_and(|l| l.contains("\"session_exit\"")))
}
