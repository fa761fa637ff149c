//! `itervox tui` in a real 80x24 terminal (tmux) against the real controller running the demo agent:
//! the running session and its live log are on screen, an agent's question is answered from the reply
//! box and the session resumes, `x` cancels and `r` resumes the selected issue, `q` quits cleanly. The
//! controller's state is read back through the API, so each key is shown to have reached it.

use std::path::PathBuf;
use std::time::Duration;

use itervox_tests::binaries::bin_path;
use itervox_tests::controller::snap;
use itervox_tests::project::IssueSpec;
use tokio::process::Command;

use crate::{DEADLINE, Setup, s};

/// A private tmux server (its own socket in a temporary folder), killed when dropped.
struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    async fn start() -> Tmux {
        let version = std::process::Command::new("tmux").arg("-V").output();
        assert!(
            version.is_ok_and(|o| o.status.success()),
            "tmux is not installed, and this test needs a real terminal: run scripts/test.sh (it installs tmux)"
        );
        let dir = tempfile::tempdir().unwrap();
        let tmux = Tmux {
            socket: dir.path().join("tmux.sock"),
            _dir: dir,
        };
        tmux.ok(&["new-session", "-d", "-s", "keep", "-x", "80", "-y", "24"])
            .await;
        tmux.ok(&["set-option", "-g", "remain-on-exit", "on"]).await;
        tmux.ok(&["set-option", "-g", "status", "off"]).await;
        tmux
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-t", "tui"]).await
    }

    async fn keys(&self, keys: &[&str]) {
        let mut cmd = vec!["send-keys", "-t", "tui"];
        cmd.extend(keys);
        self.ok(&cmd).await;
    }

    /// Polls the screen until `want` holds; fails with the last screen after the deadline.
    async fn wait_screen(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let screen = self.screen().await;
            if want(&screen) {
                return screen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the screen did not show {what}; it shows:\n{screen}"
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

#[tokio::test]
async fn the_tui_follows_a_real_controller_and_its_keys_steer_it() {
    let t = Setup::start(
        &[
            IssueSpec::new("U-1", "Todo", "Long. [demo:sleep=40]"),
            IssueSpec::new("U-2", "Todo", "Ask first. [demo:needs-input] [demo:sleep=1]"),
        ],
        &[],
    )
    .await;
    let st = t.wait("U-1 running", |s| snap::running(s, "U-1").is_some()).await;
    let session = s(snap::running(&st, "U-1").unwrap(), "sessionId").to_string();
    t.wait("U-2 waiting for input", |s| snap::input_required(s, "U-2").is_some())
        .await;

    let tmux = Tmux::start().await;
    let itervox = bin_path("itervox");
    let url = t.ctl.api();
    tmux.ok(&[
        "new-session",
        "-d",
        "-s",
        "tui",
        "-x",
        "80",
        "-y",
        "24",
        "--",
        "sh",
        "-c",
        r#""$@"; echo "[itervox exited with status $?]""#,
        "sh",
        &itervox.display().to_string(),
        "tui",
        "--url",
        &url,
    ])
    .await;

    // The running issue, the waiting one, and the first running issue's live log, which grows.
    tmux.wait_screen("U-1 running and U-2 waiting", |sc| {
        sc.contains("U-1") && sc.contains("U-2")
    })
    .await;
    // (message prefix, how many actions) of the newest action in U-1's log.
    let newest_action = |logs: &[serde_json::Value]| {
        let actions: Vec<String> = logs
            .iter()
            .filter(|e| s(e, "event") == "action")
            .map(|e| s(e, "message").chars().take(24).collect())
            .collect();
        actions.last().cloned().map(|m| (m, actions.len()))
    };
    let (first, seen) = crate::eventually("an action in U-1's log", || async {
        newest_action(&t.logs("U-1").await)
    })
    .await;
    tmux.wait_screen("U-1's latest action in the log pane", |sc| sc.contains(&first))
        .await;
    let (next, _) = crate::eventually("a further action in U-1's log", || async {
        newest_action(&t.logs("U-1").await).filter(|(_, n)| *n > seen)
    })
    .await;
    tmux.wait_screen("U-1's next action, live, in the log pane", |sc| sc.contains(&next))
        .await;

    // The reply box: `i` opens it for the waiting issue, the typed answer resumes its session.
    tmux.keys(&["i"]).await;
    tmux.wait_screen("the reply box naming U-2", |sc| {
        sc.contains("U-2") && sc.contains("Enter")
    })
    .await;
    tmux.keys(&["-l", "Ada Lovelace"]).await;
    tmux.keys(&["Enter"]).await;
    let st = t
        .wait("U-2 resumed by the reply and succeeded", |s| {
            snap::history(s, "U-2")
                .first()
                .is_some_and(|h| h["status"] == "succeeded")
        })
        .await;
    assert!(snap::input_required(&st, "U-2").is_none(), "{st:#}");

    // `1` focuses the running pane (U-1 is its only row), `x` cancels U-1; `4` focuses the paused
    // pane, `r` resumes it.
    tmux.keys(&["1"]).await;
    tmux.keys(&["x"]).await;
    let st = t
        .wait("U-1 paused by x", |s| {
            snap::paused(s, "U-1") && snap::running(s, "U-1").is_none()
        })
        .await;
    assert_eq!(st["pauseReasons"]["U-1"], "user_cancelled", "{st:#}");
    tmux.keys(&["4"]).await;
    tmux.keys(&["r"]).await;
    let st = t
        .wait("U-1 running again after r", |s| {
            snap::running(s, "U-1").is_some() && !snap::paused(s, "U-1")
        })
        .await;
    assert_eq!(
        s(snap::running(&st, "U-1").unwrap(), "sessionId"),
        session,
        "resume continues the cancelled session"
    );

    tmux.keys(&["q"]).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        // The whole pane history: tmux's "Pane is dead" line scrolls the program's last line away.
        let transcript = tmux.ok(&["capture-pane", "-p", "-J", "-S", "-", "-t", "tui"]).await;
        if transcript.contains("[itervox exited with status 0]") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "q did not end itervox tui with status 0:\n{transcript}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
