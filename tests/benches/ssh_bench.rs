//! `ssh_bench`: what the native SSH layer costs on the lab's loopback sshd, next to the OpenSSH client
//! a shell-out design would pay. Run with `cargo bench -p itervox-tests --bench ssh_bench` (as root,
//! like the SSH tests); `-- --quick` runs fewer rounds.
//!
//! Measures (a) a fresh russh connection + `exec true`, (b) one exec channel on a warm connection,
//! (c) `ssh host true` fresh and through a ControlMaster socket, and (d) streaming a file of 200-byte
//! lines with `cat` over a warm russh channel versus `ssh host cat file`, and (e) the worker's own
//! stream: a finished demo session's journal replayed by `attach` through `itervox-worker serve --stdio`
//! into the controller's protocol client, versus `ssh host cat` of the same journal file. Prints a
//! table; asserts nothing about speed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use itervox::config::HostKeyPolicy;
use itervox::hosts::ssh::{SshClient, SshConnection};
use itervox_tests::openssh::OpenSsh;
use itervox_tests::sshd::{SshHost, SshLab};
use tokio::io::AsyncBufReadExt;

const LINE_BYTES: usize = 200;

struct Rounds {
    fresh: usize,
    warm: usize,
    lines: usize,
    /// Entries of the journal replayed in (e).
    journal: usize,
}

#[derive(Default)]
struct Table {
    rows: Vec<(String, String, String)>,
}

impl Table {
    fn latency(&mut self, what: &str, samples: &mut [Duration]) {
        samples.sort();
        let median = samples[samples.len() / 2];
        let p90 = samples[(samples.len() * 9 / 10).min(samples.len() - 1)];
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        self.rows.push((
            what.to_string(),
            format!(
                "{:.2} ms median, {:.2} ms p90, {:.2} ms mean",
                ms(median),
                ms(p90),
                ms(mean)
            ),
            format!("{} runs", samples.len()),
        ));
    }

    fn throughput(&mut self, what: &str, lines: usize, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mb = (lines * LINE_BYTES) as f64 / 1_000_000.0;
        self.rows.push((
            what.to_string(),
            format!("{:.0} lines/s, {:.1} MB/s", lines as f64 / secs, mb / secs),
            format!("{lines} lines in {:.2} s", secs),
        ));
    }

    fn print(&self) {
        let w0 = self.rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w1 = self.rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        println!("\n{:<w0$}  {:<w1$}  sample", "measure", "result");
        println!("{}  {}  {}", "-".repeat(w0), "-".repeat(w1), "-".repeat(20));
        for (a, b, c) in &self.rows {
            println!("{a:<w0$}  {b:<w1$}  {c}");
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick {
        Rounds {
            fresh: 5,
            warm: 20,
            lines: 50_000,
            journal: 20_000,
        }
    } else {
        Rounds {
            fresh: 30,
            warm: 300,
            lines: 500_000,
            journal: 200_000,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(rounds))
}

async fn run(rounds: Rounds) -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    lab.trust(&host)?;
    let client = SshClient::from_config(&itervox::config::SshConfig {
        strict_host_key_checking: HostKeyPolicy::Yes,
        ..lab.ssh_config()
    });
    let spec = host.host_spec();
    let mut table = Table::default();
    println!(
        "ssh_bench: OpenSSH sshd on {} ({} build)",
        host.spec(),
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );

    // (a) Fresh russh connection (TCP, key exchange, host key check, auth) + `exec true`.
    let mut samples = Vec::new();
    for _ in 0..rounds.fresh {
        let started = Instant::now();
        let conn = client.connect(&spec).await?;
        check_true(&conn).await?;
        samples.push(started.elapsed());
        conn.disconnect().await;
    }
    table.latency("(a) russh: fresh connection + exec true", &mut samples);

    // (b) One more exec channel on a warm connection.
    let conn = client.connect(&spec).await?;
    let mut samples = Vec::new();
    for _ in 0..rounds.warm {
        let started = Instant::now();
        check_true(&conn).await?;
        samples.push(started.elapsed());
    }
    table.latency("(b) russh: exec true on a warm connection", &mut samples);
    let mut samples = Vec::new();
    for _ in 0..rounds.warm {
        samples.push(conn.latency(Duration::from_secs(20)).await?);
    }
    table.latency("    russh: keepalive round trip (latency())", &mut samples);

    // (c) The OpenSSH client: fresh, then through a ControlMaster socket.
    let ssh = OpenSsh::new(&lab, &host);
    let mut samples = Vec::new();
    for _ in 0..rounds.fresh {
        let started = Instant::now();
        ssh.run_true(None)?;
        samples.push(started.elapsed());
    }
    table.latency("(c) ssh host true (fresh process + connection)", &mut samples);
    let control = lab.dir().join("control.sock");
    ssh.start_master(&control)?;
    let mut samples = Vec::new();
    for _ in 0..rounds.warm {
        let started = Instant::now();
        ssh.run_true(Some(&control))?;
        samples.push(started.elapsed());
    }
    table.latency("    ssh host true via ControlMaster", &mut samples);
    ssh.stop_master(&control);

    // (d) Streaming a worker-like log: a file of 200-byte lines, read line by line.
    let file = host.home().join("lines.txt");
    write_lines(&file, rounds.lines)?;
    let command = format!("cat {}", file.display());
    let started = Instant::now();
    let channel = conn.exec(&command).await?;
    let mut lines = tokio::io::BufReader::with_capacity(64 * 1024, channel.stdout).lines();
    let mut count = 0usize;
    while let Some(line) = lines.next_line().await? {
        if line.len() + 1 != LINE_BYTES {
            bail!("line {count} has {} bytes", line.len() + 1);
        }
        count += 1;
    }
    table.throughput("(d) russh: cat over a warm channel", count, started.elapsed());
    if count != rounds.lines {
        bail!("russh read {count} lines of {}", rounds.lines);
    }
    let counted = ssh.count_lines(&command)?;
    let count = counted.lines;
    if counted.bytes != count * LINE_BYTES {
        bail!("ssh read {} bytes in {count} lines of {LINE_BYTES}", counted.bytes);
    }
    table.throughput("    ssh host cat file, first line to last", count, counted.streaming);
    table.throughput("    ssh host cat file, counting the ssh start", count, counted.total);
    if count != rounds.lines {
        bail!("ssh read {count} lines of {}", rounds.lines);
    }

    // (e) The worker's own stream: a finished session's journal replayed by `attach` through
    // `itervox-worker serve --stdio` on an exec channel into the controller's protocol client, next to
    // `ssh host cat` of the very same journal file.
    let journal = replay_journal(&conn, &host, rounds.journal, &mut table).await?;
    let counted = ssh.count_lines(&format!("cat {}", journal.display()))?;
    table.rows.push((
        "    ssh host cat of the same journal file".to_string(),
        counted.summary(),
        format!(
            "{} lines, {} bytes in {:.2} s ({:.2} s with the ssh start)",
            counted.lines,
            counted.bytes,
            counted.streaming.as_secs_f64(),
            counted.total.as_secs_f64()
        ),
    ));

    conn.disconnect().await;
    table.print();
    Ok(())
}

/// Runs a demo-agent session of `entries` spam lines through the worker on the host, waits for it to
/// end, then times a fresh protocol client's `attach` replay of its journal. Returns the journal's path.
async fn replay_journal(
    conn: &SshConnection,
    host: &SshHost,
    entries: usize,
    table: &mut Table,
) -> anyhow::Result<std::path::PathBuf> {
    use itervox::hosts::worker_client::WorkerClient;
    use itervox_protocol::PROTOCOL_VERSION;
    use itervox_protocol::worker::*;

    let repo = host.home().join("bench-repo");
    let root = host.home().join("bench-workspaces");
    let _ = std::fs::remove_dir_all(&repo);
    let _ = std::fs::remove_dir_all(&root);
    fs_err::create_dir_all(&repo)?;
    fs_err::write(repo.join("README.md"), "bench\n")?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "README.md"],
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "commit",
            "-qm",
            "init",
        ],
    ] {
        let ok = Command::new("git").args(args).current_dir(&repo).status()?.success();
        if !ok {
            bail!("git {args:?} failed in {}", repo.display());
        }
    }
    let worker = itervox_tests::binaries::bin_path("itervox-worker");
    let open = || async {
        let channel = conn.exec(&format!("{} serve --stdio", worker.display())).await?;
        let hello = ControllerHello {
            protocol: PROTOCOL_VERSION,
            controller_version: "ssh_bench".into(),
            workspace_root: root.display().to_string(),
        };
        anyhow::Ok(WorkerClient::start(channel.stdout, channel.stdin, hello, Duration::from_secs(20)).await?)
    };
    let patience = Duration::from_secs(120);
    let client = open().await?;
    let prepared: PreparedWorkspace = client
        .call(
            RequestBody::PrepareWorkspace(PrepareWorkspace {
                issue: "BENCH-R".into(),
                repo: repo.display().to_string(),
                base_branch: "main".into(),
                branch: "itervox/BENCH-R".into(),
                hooks: Hooks::default(),
                progress: false,
            }),
            patience,
        )
        .await?;
    let session = "bench-replay-1";
    let _: SessionStarted = client
        .call(
            RequestBody::StartSession(StartSession {
                session_id: session.into(),
                issue: "BENCH-R".into(),
                workspace: prepared.path,
                backend: Backend::Demo,
                command: String::new(),
                env: Default::default(),
                prompt: format!("Replay bench [demo:spam={entries}] [demo:sleep=0]"),
                resume_session_ref: None,
                permission_mode: Default::default(),
                turn_timeout_ms: 0,
                read_timeout_ms: 0,
                hooks: Hooks::default(),
                lease_ms: None,
            }),
            patience,
        )
        .await?;
    let deadline = Instant::now() + patience;
    loop {
        let list: SessionList = client.call(RequestBody::ListSessions, patience).await?;
        if list
            .sessions
            .iter()
            .any(|s| s.session_id == session && s.status == SessionStatus::Exited)
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the replay session did not finish within {patience:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client.close();

    // A controller that comes back: a new stream, attach from the first entry.
    let client = open().await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    client.subscribe(session, tx);
    let started = Instant::now();
    let attached: Attached = client
        .call(
            RequestBody::Attach(Attach {
                session_id: session.into(),
                from_seq: 1,
            }),
            patience,
        )
        .await?;
    let mut count = 0u64;
    loop {
        let Ok(Some(events)) = tokio::time::timeout(patience, rx.recv()).await else {
            bail!("the replay stopped after {count} of {} events", attached.last_seq);
        };
        count += events.len() as u64;
        if events.last().is_some_and(|e| e.seq() >= attached.last_seq) {
            break;
        }
    }
    let elapsed = started.elapsed();
    client.close();
    let journal = root.join(".itervox/sessions").join(session).join("journal.jsonl");
    let bytes = fs_err::metadata(&journal)?.len();
    let secs = elapsed.as_secs_f64();
    table.rows.push((
        "(e) worker journal replay → SSH → controller protocol client".to_string(),
        format!(
            "{:.0} events/s, {:.1} MB/s",
            count as f64 / secs,
            bytes as f64 / 1e6 / secs
        ),
        format!("{count} events, {bytes} bytes in {secs:.2} s"),
    ));
    Ok(journal)
}

async fn check_true(conn: &SshConnection) -> anyhow::Result<()> {
    let out = conn.run("true", b"", Duration::from_secs(20)).await?;
    if !out.status.success() {
        bail!("`true` failed: {out:?}");
    }
    Ok(())
}

fn write_lines(path: &Path, lines: usize) -> anyhow::Result<()> {
    let line = format!("{{\"seq\":0,\"text\":\"{}\"}}\n", "x".repeat(LINE_BYTES - 20));
    assert_eq!(line.len(), LINE_BYTES);
    let mut text = String::with_capacity(lines * LINE_BYTES);
    for _ in 0..lines {
        text.push_str(&line);
    }
    fs_err::write(path, text)?;
    Ok(())
}
