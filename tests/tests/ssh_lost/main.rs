//! A lost build host never runs a session twice: a real controller with two lab hosts, the host of a
//! running session cut off (its connections frozen, its listener gone) for longer than
//! `ssh.host_lost_after_ms`. The host's supervisor gives the session up when its lease runs out, the
//! controller records the attempt `lost` and starts a new one on the other host, and at no sampled
//! moment do agents of both attempts live. After the host comes back, the old session stays gone and
//! the history is right.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use itervox_tests::binaries::bin_path;
use itervox_tests::controller::{Api, ControllerProcess, snap};
use itervox_tests::project::{IssueSpec, Project};
use itervox_tests::sshd::{SshHost, SshLab};
use serde_json::Value;

const ISSUE: &str = "LOST-1";
/// The lease, and how long the controller lets a host be silent before it gives its sessions up (long
/// enough that a loaded machine's scheduling hiccups do not look like a lost host).
const LOST_AFTER_MS: u64 = 4_000;
/// Generous limit for anything that should happen "soon" on a shared, noisy machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// The agent processes alive now that carry `ITERVOX_ISSUE_IDENTIFIER=<issue>` and a HOME under
/// `homes` (this test's lab hosts: other tests on the machine may run an issue of the same name):
/// session id → pids.
fn agents_of(issue: &str, homes: &Path) -> BTreeMap<String, Vec<i32>> {
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    let want = format!("ITERVOX_ISSUE_IDENTIFIER={issue}");
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        // Zombies are dead already (their parent has not reaped them yet).
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        {
            continue;
        }
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: Vec<&[u8]> = env.split(|&b| b == 0).collect();
        if !vars.contains(&want.as_bytes()) || !vars.contains(&b"ITERVOX_AGENT=1".as_slice()) {
            continue;
        }
        let home = vars
            .iter()
            .find_map(|v| v.strip_prefix(b"HOME="))
            .map(|h| PathBuf::from(String::from_utf8_lossy(h).into_owned()));
        if !home.is_some_and(|h| h.starts_with(homes)) {
            continue;
        }
        let session = vars
            .iter()
            .find_map(|v| v.strip_prefix(b"ITERVOX_SESSION_ID="))
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default();
        out.entry(session).or_default().push(pid);
    }
    out
}

/// A moment with agents of more than one session: ms since the sampler started, and session → its
/// processes (described).
type Overlap = (u128, BTreeMap<String, Vec<String>>);

/// A process for failure messages: pid, command line and HOME.
fn describe(pid: i32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default();
    let home = std::fs::read(format!("/proc/{pid}/environ"))
        .ok()
        .and_then(|env| {
            env.split(|&b| b == 0).find_map(|v| {
                v.strip_prefix(b"HOME=")
                    .map(|h| String::from_utf8_lossy(h).into_owned())
            })
        })
        .unwrap_or_default();
    format!("{pid} `{}` HOME={home}", cmdline.trim())
}

/// Samples the agents of the issue every 20 ms until stopped; remembers every session seen and every
/// moment at which more than one session had live agents.
struct Sampler {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeSet<String>>>,
    /// Moments with agents of more than one session: ms since the sampler started, and who was alive
    /// (session → pid and the process's command line and HOME).
    overlaps: Arc<Mutex<Vec<Overlap>>>,
    samples: Arc<Mutex<u64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(issue: &'static str, homes: PathBuf) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let overlaps = Arc::new(Mutex::new(Vec::new()));
        let samples = Arc::new(Mutex::new(0));
        let (s, se, o, n) = (stop.clone(), seen.clone(), overlaps.clone(), samples.clone());
        let thread = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            while !s.load(Ordering::SeqCst) {
                let now = agents_of(issue, &homes);
                se.lock().unwrap().extend(now.keys().cloned());
                if now.len() > 1 {
                    let described = now
                        .iter()
                        .map(|(session, pids)| (session.clone(), pids.iter().map(|&p| describe(p)).collect()))
                        .collect();
                    o.lock().unwrap().push((started.elapsed().as_millis(), described));
                }
                *n.lock().unwrap() += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Sampler {
            stop,
            seen,
            overlaps,
            samples,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> BTreeSet<String> {
        self.seen.lock().unwrap().clone()
    }

    fn finish(mut self) -> (u64, Vec<Overlap>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let n = *self.samples.lock().unwrap();
        let overlaps = self.overlaps.lock().unwrap().clone();
        (n, overlaps)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn host_status(state: &Value, host: &str) -> Option<String> {
    state["sshHosts"]
        .as_array()?
        .iter()
        .find(|h| h["host"] == host)
        .and_then(|h| h["status"].as_str().map(str::to_string))
}

/// The session folder of `session` on a lab host (workspace root `~/.itervox/workspaces`).
fn session_dir(host: &SshHost, session: &str) -> std::path::PathBuf {
    host.home().join(".itervox/workspaces/.itervox/sessions").join(session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_host_is_retried_elsewhere_and_never_runs_the_session_twice() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let lab = SshLab::new()?;
    let mut hosts = [lab.start_host("127.0.0.2")?, lab.start_host("127.0.0.3")?];
    let ssh = lab.ssh_config();
    // Long steps (30 s each) keep the first attempt running until its host is cut off.
    let project = Project::new(
        &[IssueSpec::new(ISSUE, "Todo", "Lost host test [demo:sleep=300]")],
        "",
        "",
    );
    let extra = format!(
        "  ssh_hosts: [{}, {}]\n  max_concurrent_agents_per_host: 1\n",
        hosts[0].spec(),
        hosts[1].spec()
    );
    let ssh_yaml = format!(
        "ssh:\n  user: root\n  identity_file: {key}\n  known_hosts: {kh}\n  strict_host_key_checking: accept-new\n  \
         connect_timeout_ms: 5000\n  keepalive_interval_ms: 500\n  host_lost_after_ms: {LOST_AFTER_MS}\n  worker_path: {worker}\n",
        key = ssh.identity_file.as_ref().context("lab key")?.display(),
        kh = ssh.known_hosts.display(),
        worker = bin_path("itervox-worker").display(),
    );
    // Each host keeps its workspaces (and its sessions and lease) under its own HOME.
    let text = fs_err::read_to_string(&project.workflow)?;
    let text = text
        .replace(
            &format!("root: {}", project.workspaces.display()),
            "root: ~/.itervox/workspaces",
        )
        .replace("  inline_input: true\n", &format!("  inline_input: true\n{extra}"))
        .replacen("---\nWork on", &format!("{ssh_yaml}---\nWork on"), 1);
    fs_err::write(&project.workflow, text)?;

    let sampler = Sampler::start(ISSUE, lab.dir().to_path_buf());
    let t0 = std::time::Instant::now();
    let ctl = ControllerProcess::start(&project.workflow, &project.state_dir, &[]).await?;
    let api = Api::new(&ctl.api(), None);

    // The first attempt runs; its agent process is seen on the host it was placed on.
    let state = api
        .wait_state(PATIENCE, "the first attempt to run", |s| {
            snap::running(s, ISSUE).is_some_and(|r| r["sessionId"].is_string() && r["workerHost"].is_string())
        })
        .await
        .with_context(|| ctl.output())?;
    let first = snap::running(&state, ISSUE).context("running row")?.clone();
    let old_session = first["sessionId"].as_str().unwrap_or_default().to_string();
    let old_host_name = first["workerHost"].as_str().unwrap_or_default().to_string();
    let (old_i, new_i) = if old_host_name == hosts[0].spec() {
        (0, 1)
    } else {
        (1, 0)
    };
    assert_eq!(old_host_name, hosts[old_i].spec(), "placed on a lab host");
    let new_host_name = hosts[new_i].spec();
    let old_pids = wait_for("the first attempt's agent process", || {
        agents_of(ISSUE, lab.dir()).remove(&old_session)
    })
    .await?;

    // While the controller is in touch, its pings renew the lease: the session outlives it.
    let in_touch_until = tokio::time::Instant::now() + Duration::from_millis(LOST_AFTER_MS * 3 / 2);
    while tokio::time::Instant::now() < in_touch_until {
        assert!(
            agents_of(ISSUE, lab.dir()).contains_key(&old_session),
            "the first attempt stopped although its host was reachable:\n{}",
            ctl.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The next attempt is to be quick.
    fs_err::write(
        project.issues_dir.join(format!("{ISSUE}.md")),
        project.issue_text(ISSUE).replace("[demo:sleep=300]", "[demo:sleep=5]"),
    )?;

    // Cut the host off: open connections go silent, new ones are refused.
    assert!(
        hosts[old_i].freeze_connections() > 0,
        "the controller's connection is there to freeze"
    );
    hosts[old_i].stop_listener()?;
    eprintln!(
        "{} ms: {old_host_name} cut off while running {old_session}",
        t0.elapsed().as_millis()
    );

    // The controller gives the attempt up and starts a new one on the other host.
    let state = api
        .wait_state(
            PATIENCE,
            "the first attempt to be lost and a new one to run on the other host",
            |s| {
                snap::history(s, ISSUE)
                    .iter()
                    .any(|h| h["sessionId"] == old_session.as_str() && h["status"] == "lost")
                    && snap::running(s, ISSUE).is_some_and(|r| r["sessionId"] != old_session.as_str())
            },
        )
        .await
        .with_context(|| ctl.output())?;
    let second = snap::running(&state, ISSUE).context("running row")?.clone();
    let new_session = second["sessionId"].as_str().unwrap_or_default().to_string();
    eprintln!("{} ms: {new_session} runs on {new_host_name}", t0.elapsed().as_millis());
    assert_eq!(
        second["workerHost"],
        new_host_name.as_str(),
        "the new attempt runs elsewhere"
    );
    assert!(
        second["attempt"].as_u64() > first["attempt"].as_u64() || first["attempt"].is_null(),
        "a new attempt: {first} then {second}"
    );
    // By then the old agent is gone: its own supervisor stopped it when the lease ran out.
    for pid in &old_pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z")),
            "old agent {pid} still alive while the new attempt runs"
        );
    }
    let exit: Value = serde_json::from_str(&fs_err::read_to_string(
        session_dir(&hosts[old_i], &old_session).join("exit.json"),
    )?)?;
    assert_eq!(exit["status"], "cancelled", "{exit}");
    assert!(
        exit["error"].as_str().unwrap_or("").contains("lease expired"),
        "the host gave the session up itself: {exit}"
    );

    // The host comes back; the new attempt finishes.
    hosts[old_i].start()?;
    hosts[old_i].thaw_connections();
    eprintln!("{} ms: {old_host_name} is back", t0.elapsed().as_millis());
    let state = api
        .wait_state(PATIENCE, "the new attempt to succeed and the old host to be up", |s| {
            snap::history(s, ISSUE)
                .iter()
                .any(|h| h["sessionId"] == new_session.as_str() && h["status"] == "succeeded")
                && host_status(s, &old_host_name).as_deref() == Some("up")
        })
        .await
        .with_context(|| ctl.output())?;
    // The stale session is cancelled on reconnect (a no-op by now: the host already stopped it).
    wait_for("the controller to clear the stale session", || {
        ctl.output().contains("Cancelled a stale session").then_some(())
    })
    .await
    .with_context(|| ctl.output())?;

    let history = snap::history(&state, ISSUE);
    let old_rows: Vec<_> = history
        .iter()
        .filter(|h| h["sessionId"] == old_session.as_str())
        .collect();
    let new_rows: Vec<_> = history
        .iter()
        .filter(|h| h["sessionId"] == new_session.as_str())
        .collect();
    assert_eq!(old_rows.len(), 1, "{history:?}");
    assert_eq!(new_rows.len(), 1, "{history:?}");
    assert_eq!(old_rows[0]["status"], "lost");
    assert_eq!(old_rows[0]["workerHost"], old_host_name.as_str());
    assert!(
        old_rows[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("host_lost_after_ms"),
        "{}",
        old_rows[0]
    );
    assert_eq!(new_rows[0]["workerHost"], new_host_name.as_str());

    // The old session's late entries (its lease-expiry exit) never reached the issue's log.
    let logs = api.get(&format!("/issues/{ISSUE}/logs")).await?;
    let entries = logs
        .as_array()
        .or_else(|| logs["entries"].as_array())
        .cloned()
        .unwrap_or_default();
    assert!(!entries.is_empty(), "the issue has a log: {logs}");
    assert!(
        !entries
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains("lease expired"))),
        "no late entry of the lost session in the log"
    );
    // The issue's log says what happened: the session was lost, and a new attempt went elsewhere.
    let says = |needle: &str| {
        entries
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains(needle)))
    };
    assert!(
        says("unreachable for too long; the session is lost"),
        "the loss is in the log: {entries:#?}"
    );
    assert!(
        says("was lost; new attempt on another host"),
        "the new attempt is in the log: {entries:#?}"
    );
    assert!(agents_of(ISSUE, lab.dir()).is_empty(), "no agent of the issue is left");

    let seen = sampler.seen();
    assert!(
        seen.contains(&old_session) && seen.contains(&new_session),
        "the sampler saw both attempts' agents: {seen:?}"
    );
    let (samples, overlaps) = sampler.finish();
    assert!(samples > 100, "the sampler ran ({samples} samples)");
    assert!(
        overlaps.is_empty(),
        "agents of two attempts were alive at once (ms since start → sessions): {overlaps:#?}\ncontroller:\n{}",
        ctl.output()
    );
    let _ = &mut hosts;
    Ok(())
}

#[test]
fn the_sampler_sees_a_process_with_the_issue_environment() {
    // Guards the overlap check itself: a process that looks like an agent of an issue is found.
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .env("ITERVOX_AGENT", "1")
        .env("ITERVOX_ISSUE_IDENTIFIER", "SAMPLER-1")
        .env("ITERVOX_SESSION_ID", "s-sampler")
        .env("HOME", "/tmp/itervox-sampler-home/host-a")
        .spawn()
        .expect("sleep runs");
    let found = agents_of("SAMPLER-1", Path::new("/tmp/itervox-sampler-home"));
    let elsewhere = agents_of("SAMPLER-1", Path::new("/tmp/itervox-other-lab"));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(found.get("s-sampler"), Some(&vec![child.id() as i32]));
    assert!(elsewhere.is_empty(), "agents of other labs do not count: {elsewhere:?}");
    assert!(agents_of("SAMPLER-1", Path::new("/tmp/itervox-sampler-home")).is_empty());
}
