//! Test fixtures: a host (temp workspace root + a real git repository), the real `itervox-worker`
//! binary driven over its stdio, and shell-script agents that print Claude Code stream-json.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use itervox_worker::process_group::{signal_group, signal_process};
use itervox_worker::session::SessionState;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// Generous bound for anything a test waits for (the machine is shared and slow at times).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn worker_bin() -> &'static str {
    env!("CARGO_BIN_EXE_itervox-worker")
}

/// Polls `cond` until it holds or `PATIENCE` runs out.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A simulated build host: a workspace root and a source repository, in a temp folder. On drop it
/// stops every supervisor and agent its sessions still run (by their recorded, verified pids).
pub struct Host {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub repo: PathBuf,
}

impl Host {
    pub fn new() -> Host {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("README.md"), "hello\n").unwrap();
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "first"]);
        Host {
            root: tmp.path().join("root"),
            repo,
            tmp,
        }
    }

    pub fn root_str(&self) -> String {
        self.root.display().to_string()
    }

    pub fn session_dir(&self, id: &str) -> PathBuf {
        self.root.join(".itervox").join("sessions").join(id)
    }

    pub fn state(&self, id: &str) -> SessionState {
        let text = std::fs::read_to_string(self.session_dir(id).join("state.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Every event in the session's journal file, as JSON.
    pub fn journal(&self, id: &str) -> Vec<Value> {
        let path = self.session_dir(id).join("journal.jsonl");
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Writes an executable test agent: it ignores its flags, reads its prompt from stdin, records its
    /// arguments, prompt and environment under `<tmp>/agent-<name>/`, then runs `body`, which can use
    /// `init`, `say TEXT` and `result TEXT` to print Claude Code stream-json lines.
    pub fn agent(&self, name: &str, body: &str) -> PathBuf {
        let dir = self.tmp.path().join(format!("agent-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.sh");
        let script = format!(
            r#"#!/bin/sh
REC={rec}
T="${{ITERVOX_TURN:-0}}"
printf '%s\n' "$@" > "$REC/args-$T"
env > "$REC/env-$T"
cat > "$REC/prompt-$T"
SID="sess-from-turn-$T"
init() {{ printf '{{"type":"system","subtype":"init","cwd":"%s","session_id":"%s","tools":[],"model":"test-model","permissionMode":"bypassPermissions"}}\n' "$PWD" "$SID"; }}
say() {{ printf '{{"type":"assistant","message":{{"id":"msg_1","type":"message","role":"assistant","model":"test-model","content":[{{"type":"text","text":"%s"}}],"stop_reason":null,"usage":{{"input_tokens":3,"output_tokens":2}}}},"parent_tool_use_id":null,"session_id":"%s"}}\n' "$1" "$SID"; }}
result() {{ printf '{{"type":"result","subtype":"success","is_error":false,"duration_ms":5,"num_turns":1,"result":"%s","session_id":"%s","total_cost_usd":0.001,"usage":{{"input_tokens":10,"output_tokens":5}}}}\n' "$1" "$SID"; }}
{body}
"#,
            rec = dir.display(),
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        path
    }

    /// What the agent recorded for a turn (`args`, `env` or `prompt`).
    pub fn agent_record(&self, name: &str, what: &str, turn: u32) -> Option<String> {
        std::fs::read_to_string(self.tmp.path().join(format!("agent-{name}/{what}-{turn}"))).ok()
    }

    pub fn scratch(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.root.join(".itervox").join("sessions")) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("state.json")) else {
                continue;
            };
            let Ok(state) = serde_json::from_str::<SessionState>(&text) else {
                continue;
            };
            if let Some(sup) = state.supervisor
                && sup.is_alive()
            {
                let _ = signal_process(sup.pid, Signal::SIGKILL);
            }
            if let Some(agent) = state.agent
                && agent.is_alive()
            {
                let _ = signal_group(agent.pid, Signal::SIGKILL);
            }
        }
    }
}

/// The real worker binary, running `serve --stdio`.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    frames: Receiver<Value>,
    /// Frames received while waiting for something else (events, other answers).
    pub seen: Vec<Value>,
    next_id: u64,
}

impl Worker {
    /// Starts a worker (stderr goes to a log file in the host's temp folder).
    pub fn start(host: &Host) -> Worker {
        Worker::start_with_env(host, &[])
    }

    pub fn start_with_env(host: &Host, env: &[(&str, &str)]) -> Worker {
        let log = tempfile::Builder::new()
            .prefix("serve-")
            .suffix(".log")
            .tempfile_in(host.tmp.path())
            .unwrap()
            .keep()
            .unwrap()
            .0;
        let mut child = Command::new(worker_bin())
            .args(["serve", "--stdio"])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the worker binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| json!({"type": "UNPARSABLE", "line": line, "error": e.to_string()}));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Worker {
            stdin: child.stdin.take(),
            child,
            frames: rx,
            seen: Vec::new(),
            next_id: 1,
        }
    }

    /// Starts a worker and completes the handshake on the host's root.
    pub fn ready(host: &Host) -> (Worker, Value) {
        let mut w = Worker::start(host);
        let hello = w.hello(&host.root_str());
        assert_eq!(hello["type"], "hello", "{hello}");
        (w, hello)
    }

    /// Sends one raw line.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    pub fn send(&mut self, frame: &Value) {
        self.send_line(&frame.to_string());
    }

    /// The next frame from stdout (waiting up to `PATIENCE`).
    pub fn next_frame(&mut self) -> Value {
        match self.frames.recv_timeout(PATIENCE) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => panic!("no frame within {PATIENCE:?}; seen: {:#?}", self.seen),
            Err(RecvTimeoutError::Disconnected) => panic!("the worker closed stdout; seen: {:#?}", self.seen),
        }
    }

    /// Waits for the first frame (new or already seen) matching `pred`, and takes it out of `seen`.
    pub fn wait_frame(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.frames.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(v) => self.seen.push(v),
                Err(_) => panic!("timed out waiting for {what}; seen: {:#?}", self.seen),
            }
        }
    }

    pub fn hello(&mut self, root: &str) -> Value {
        self.send(&json!({"type": "hello", "protocol": 1, "controllerVersion": "test", "workspaceRoot": root}));
        self.wait_frame("the hello answer", |v| {
            v["type"] == "hello" || (v["type"] == "error" && v["id"] == 0)
        })
    }

    /// Sends a request with a fresh id; returns the id.
    pub fn send_request(&mut self, mut body: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        body["id"] = json!(id);
        self.send(&body);
        id
    }

    pub fn answer(&mut self, id: u64) -> Value {
        self.wait_frame(&format!("the answer to request {id}"), |v| {
            (v["type"] == "ok" || v["type"] == "error") && v["id"] == id
        })
    }

    /// Sends a request and waits for its answer (ok or error).
    pub fn request(&mut self, body: Value) -> Value {
        let id = self.send_request(body);
        self.answer(id)
    }

    /// Sends a request that must succeed.
    pub fn ok(&mut self, body: Value) -> Value {
        let answer = self.request(body.clone());
        assert_eq!(answer["type"], "ok", "request {body} failed: {answer}");
        answer
    }

    /// Every session event (frames with a seq) of `session` received so far, leaving them in `seen`.
    pub fn events(&mut self, session: &str) -> Vec<Value> {
        self.drain();
        self.seen
            .iter()
            .filter(|v| v["sessionId"] == session && v.get("seq").is_some() && v["type"] != "ok")
            .cloned()
            .collect()
    }

    /// Moves frames already received into `seen` without waiting.
    pub fn drain(&mut self) {
        while let Ok(v) = self.frames.try_recv() {
            self.seen.push(v);
        }
    }

    /// Waits until `session` has journaled a `session_exit` for `turn` on this stream; returns it.
    pub fn wait_exit(&mut self, session: &str, turn: u32) -> Value {
        let found = |v: &Value| v["type"] == "session_exit" && v["sessionId"] == session && v["turn"] == turn;
        let exit = self.wait_frame(&format!("session_exit of {session} turn {turn}"), found);
        self.seen.push(exit.clone());
        exit
    }

    /// Kills the serve process with SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes stdin and waits for the process to exit.
    pub fn close(mut self) -> ExitStatus {
        self.stdin.take();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the worker did not exit after stdin closed");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The seqs of events, checked to be contiguous from `first`.
pub fn assert_contiguous(events: &[Value], first: u64) -> Vec<u64> {
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let want: Vec<u64> = (first..first + seqs.len() as u64).collect();
    assert_eq!(seqs, want, "events must be contiguous and in order: {events:#?}");
    seqs
}

/// How many log entries' messages contain `marker`.
pub fn entries_with(events: &[Value], marker: &str) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == "log" && e["entry"]["message"].as_str().unwrap_or("").contains(marker))
        .count()
}

/// A `start_session` request for the host's worktree of `issue`.
pub fn start_request(session: &str, issue: &str, workspace: &str, agent: &Path) -> Value {
    json!({
        "type": "start_session",
        "sessionId": session,
        "issue": issue,
        "workspace": workspace,
        "backend": "claude",
        "command": agent.display().to_string(),
        "env": {"FROM_CONTROLLER": "yes"},
        "prompt": format!("work on {issue}"),
        "turnTimeoutMs": 0,
        "readTimeoutMs": 0,
    })
}

/// Prepares the worktree of `issue` and returns its path.
pub fn prepare(w: &mut Worker, host: &Host, issue: &str) -> String {
    let answer = w.ok(json!({
        "type": "prepare_workspace",
        "issue": issue,
        "repo": host.repo.display().to_string(),
        "baseBranch": "main",
        "branch": format!("itervox/{issue}"),
    }));
    answer["path"].as_str().unwrap().to_string()
}

/// Reads a pid a test agent wrote to a file.
/// A shell line that waits until `gate` exists (the test creates it to let a script go on).
pub fn wait_for_gate(gate: &Path) -> String {
    format!("while [ ! -e '{}' ]; do sleep 0.05; done", gate.display())
}

pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
