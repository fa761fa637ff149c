//! `itervox tui` in a real terminal: tmux runs the built binary against a controller started in this
//! process on loopback (dry run, in-memory tracker); keys go in with `tmux send-keys` and the screen
//! comes back with `tmux capture-pane`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use itervox::config::{Config, TrackerKind, Workflow};
use itervox::tracker::Issue;
use itervox::tracker::memory::MemoryTracker;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// Generous: the machine is shared; waits end as soon as their condition holds.
const PATIENCE: Duration = Duration::from_secs(20);
const TOKEN: &str = "tui-test-token";

/// A controller serving on loopback until stopped or dropped.
struct Served {
    addr: SocketAddr,
    cancel: CancellationToken,
    serve: Option<tokio::task::JoinHandle<()>>,
}

impl Served {
    async fn start(dir: &Path, addr: Option<SocketAddr>) -> Served {
        let listener = match addr {
            None => tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            Some(a) => {
                // The previous listener on this port is closed; binding again may take a moment.
                let deadline = tokio::time::Instant::now() + PATIENCE;
                loop {
                    match tokio::net::TcpListener::bind(a).await {
                        Ok(l) => break l,
                        Err(e) if tokio::time::Instant::now() > deadline => panic!("cannot bind {a} again: {e}"),
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            }
        };
        let addr = listener.local_addr().unwrap();
        let mut config = Config::default();
        config.tracker.kind = TrackerKind::Memory;
        config.polling.interval_ms = 3_600_000;
        config.agent.max_concurrent_agents = 3;
        let workflow = Workflow {
            path: dir.join("WORKFLOW.md"),
            config,
            prompt_template: "Work on {{ issue.identifier }}".into(),
            content_hash: 0,
        };
        let mut options = itervox::RunOptions::new(workflow, dir.join("state"));
        options.tracker = Some(Arc::new(MemoryTracker::new(vec![Issue {
            id: "T-1".into(),
            identifier: "T-1".into(),
            title: "First".into(),
            state: "Backlog".into(),
            ..Issue::default()
        }])));
        options.dry_run = true;
        options.watch_workflow = false;
        options.api_token = Some(TOKEN.into());
        options.keep_alive = Duration::from_secs(2);
        options.worker_binary = Some(dir.join("no-such-worker"));
        let cancel = CancellationToken::new();
        let (_controller, serve) = itervox::start(options, listener, cancel.clone()).await.unwrap();
        Served {
            addr,
            cancel,
            serve: Some(tokio::spawn(serve)),
        }
    }

    async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(s) = self.serve.take() {
            tokio::time::timeout(PATIENCE, s)
                .await
                .expect("the controller stops within 20 s")
                .unwrap();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A private tmux server (its own socket in a temporary folder), killed when dropped.
struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    /// Starts the server with a placeholder session and `remain-on-exit` on, so a pane whose
    /// program ended can still be inspected (its exit status, its last screen).
    async fn start() -> Tmux {
        let version = std::process::Command::new("tmux").arg("-V").output();
        if !version.is_ok_and(|o| o.status.success()) {
            panic!(
                "tmux is not installed, and this test needs a real terminal: run scripts/test.sh (it installs \
                 tmux) or apt-get install tmux"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let tmux = Tmux {
            socket: dir.path().join("tmux.sock"),
            _dir: dir,
        };
        tmux.ok(&["new-session", "-d", "-s", "keep", "-x", "80", "-y", "24"])
            .await;
        tmux.ok(&["set-option", "-g", "remain-on-exit", "on"]).await;
        // No status bar: the program gets the whole 80x24.
        tmux.ok(&["set-option", "-g", "status", "off"]).await;
        tmux
    }

    async fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `itervox tui` with `args` in a new 80x24 window named `name`, with `env` set.
    async fn tui(&self, name: &str, env: &[&str], args: &[&str]) {
        let bin = env!("CARGO_BIN_EXE_itervox");
        let mut cmd = vec!["new-session", "-d", "-s", name, "-x", "80", "-y", "24"];
        for e in env {
            cmd.extend(["-e", e]);
        }
        // tmux's own #{pane_dead_status} is racy (empty when the pty closes before the child is
        // reaped), so a shell reports the exit status in the pane.
        cmd.extend([
            "--",
            "sh",
            "-c",
            r#""$@"; echo "[itervox exited with status $?]""#,
            "sh",
            bin,
            "tui",
        ]);
        cmd.extend(args);
        self.ok(&cmd).await;
    }

    async fn screen(&self, name: &str) -> String {
        self.ok(&["capture-pane", "-p", "-t", name]).await
    }

    /// Everything the pane printed, history included, wrapped lines joined (tmux's "Pane is dead"
    /// line scrolls the last output of an ended program off the visible screen).
    async fn transcript(&self, name: &str) -> String {
        self.ok(&["capture-pane", "-p", "-J", "-S", "-", "-t", name]).await
    }

    async fn keys(&self, name: &str, keys: &[&str]) {
        let mut cmd = vec!["send-keys", "-t", name];
        cmd.extend(keys);
        self.ok(&cmd).await;
    }

    /// Polls the screen until `want` holds; fails with the last screen after [`PATIENCE`].
    async fn wait_screen(&self, name: &str, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let s = self.screen(name).await;
            if want(&s) {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the screen did not show {what} within 20 s; it shows:\n{s}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for `itervox tui` in `name` to end and returns its exit status.
    async fn wait_exit(&self, name: &str) -> i32 {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let text = self.transcript(name).await;
            let status = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("[itervox exited with status "))
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|n| n.parse().ok());
            if let Some(status) = status {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "itervox tui in {name} did not exit within 20 s; screen:\n{}",
                self.screen(name).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tui_in_tmux_shows_state_help_disconnection_and_quits() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path(), None).await;
    let addr = served.addr;
    let url = format!("http://{addr}");
    let tmux = Tmux::start().await;
    let token_env = format!("ITERVOX_API_TOKEN={TOKEN}");
    tmux.tui("tui", &[&token_env], &["--url", &url]).await;

    // The running list and the other panes, filled from the API with the token from the environment.
    let s = tmux
        .wait_screen("tui", "the running pane of a live feed", |s| {
            s.contains("live") && s.contains("Running (0/3)") && s.contains("Hosts (1)")
        })
        .await;
    assert!(s.contains("no running sessions"), "{s}");
    assert!(s.contains("local"), "the local host is listed:\n{s}");
    assert!(s.contains("dry run"), "{s}");
    assert!(s.lines().all(|l| l.chars().count() <= 80));

    // Help.
    tmux.keys("tui", &["?"]).await;
    tmux.wait_screen("tui", "the help overlay", |s| {
        s.contains("Help: keys") && s.contains("terminate the selected issue")
    })
    .await;
    tmux.keys("tui", &["Escape"]).await;
    tmux.wait_screen("tui", "the help closed", |s| !s.contains("Help: keys"))
        .await;

    // A key that reaches the API.
    tmux.keys("tui", &["R"]).await;
    tmux.wait_screen("tui", "the refresh answer", |s| {
        s.contains("refresh queued") || s.contains("refresh joined")
    })
    .await;

    // The controller goes away: said plainly; it comes back: live again without a key press.
    served.stop().await;
    tmux.wait_screen("tui", "the disconnected banner", |s| s.contains("DISCONNECTED"))
        .await;
    let again = Served::start(dir.path(), Some(addr)).await;
    tmux.wait_screen("tui", "the feed live again", |s| {
        !s.contains("DISCONNECTED") && s.contains("live")
    })
    .await;

    // Quit: exit status 0, and the terminal is back from the alternate screen.
    tmux.keys("tui", &["q"]).await;
    assert_eq!(tmux.wait_exit("tui").await, 0);
    let s = tmux.transcript("tui").await;
    assert!(
        !s.contains("Running (0/3)"),
        "the TUI's screen was not cleared on exit:\n{s}"
    );
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_before_the_screen_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path(), None).await;
    let url = format!("http://{}", served.addr);
    let tmux = Tmux::start().await;
    tmux.tui("bad", &[], &["--url", &url, "--token", "wrong"]).await;
    assert_eq!(tmux.wait_exit("bad").await, 2);
    let s = tmux.transcript("bad").await;
    assert!(s.contains("refused the token"), "{s}");
    served.stop().await;
}

#[tokio::test]
async fn without_a_terminal_it_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_itervox"))
        .args(["tui", "--url", "http://127.0.0.1:9"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs an interactive terminal"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_while_the_controller_is_down_then_sigterm_restores_the_terminal() {
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let tmux = Tmux::start().await;
    tmux.tui("down", &[], &["--url", &url]).await;
    let s = tmux
        .wait_screen("down", "the disconnected banner", |s| {
            s.contains("DISCONNECTED") && s.contains("no data yet")
        })
        .await;
    assert!(s.contains("Connection refused"), "{s}");

    let shell: i32 = tmux
        .ok(&["display-message", "-p", "-t", "down", "#{pane_pid}"])
        .await
        .trim()
        .parse()
        .unwrap();
    let children = format!("/proc/{shell}/task/{shell}/children");
    let tui: i32 = std::fs::read_to_string(&children)
        .unwrap()
        .split_whitespace()
        .next()
        .expect("the shell runs itervox tui")
        .parse()
        .unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(tui), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(tmux.wait_exit("down").await, 0);
    let s = tmux.transcript("down").await;
    assert!(
        !s.contains("DISCONNECTED"),
        "the TUI's screen was not cleared on SIGTERM:\n{s}"
    );
}
