//! The OpenSSH client (`ssh`) aimed at a lab host with the lab's key and known_hosts and nothing from
//! `~/.ssh`: the shell-out baseline the benches compare the native link with.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::sshd::{SshHost, SshLab};

/// `ssh` with the lab's key and known_hosts, for one host.
#[derive(Debug, Clone)]
pub struct OpenSsh {
    args: Vec<String>,
    destination: String,
}

impl OpenSsh {
    pub fn new(lab: &SshLab, host: &SshHost) -> OpenSsh {
        let args = [
            "-F",
            "/dev/null",
            "-T",
            "-i",
            &lab.client_key().private_key.display().to_string(),
            "-p",
            &host.port().to_string(),
            "-o",
            &format!("UserKnownHostsFile={}", lab.known_hosts().display()),
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        OpenSsh {
            args,
            destination: format!("root@{}", host.addr()),
        }
    }

    /// `ssh` with the options (and a ControlMaster socket when given), before the destination.
    fn command(&self, control: Option<&Path>) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(&self.args);
        if let Some(socket) = control {
            cmd.arg("-o").arg(format!("ControlPath={}", socket.display()));
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// `ssh host true`, fresh or through the ControlMaster socket `control`.
    pub fn run_true(&self, control: Option<&Path>) -> anyhow::Result<()> {
        let out = self
            .command(control)
            .arg(&self.destination)
            .arg("true")
            .output()
            .context("running ssh")?;
        if !out.status.success() {
            bail!("ssh true failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Starts a ControlMaster on `control` that outlives this call.
    pub fn start_master(&self, control: &Path) -> anyhow::Result<()> {
        let out = self
            .command(Some(control))
            .args(["-M", "-f", "-N", "-o", "ControlPersist=yes"])
            .arg(&self.destination)
            .output()?;
        if !out.status.success() {
            bail!("ssh ControlMaster failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    pub fn stop_master(&self, control: &Path) {
        let _ = self
            .command(Some(control))
            .args(["-O", "exit"])
            .arg(&self.destination)
            .output();
    }

    /// Runs `command` on the host and counts the lines and bytes of its output as they arrive.
    pub fn count_lines(&self, command: &str) -> anyhow::Result<Counted> {
        let started = Instant::now();
        let mut first_line = None;
        let mut child = self
            .command(None)
            .arg(&self.destination)
            .arg(command)
            .stdout(Stdio::piped())
            .spawn()
            .context("running ssh")?;
        let stdout = child.stdout.take().context("ssh stdout")?;
        let (mut lines, mut bytes) = (0, 0);
        let mut reader = BufReader::with_capacity(64 * 1024, stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            first_line.get_or_insert_with(Instant::now);
            lines += 1;
            bytes += n;
        }
        let ended = Instant::now();
        let status = child.wait()?;
        if !status.success() {
            bail!("ssh {command} failed ({status}) after {lines} lines");
        }
        Ok(Counted {
            lines,
            bytes,
            total: ended - started,
            streaming: first_line.map(|f| ended - f).unwrap_or_default(),
        })
    }
}

/// What `count_lines` read, and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Counted {
    pub lines: usize,
    pub bytes: usize,
    /// From starting `ssh` (a process, a connection, authentication, the remote command) to the end.
    pub total: Duration,
    /// From the first line's arrival to the end: the steady rate of the stream itself.
    pub streaming: Duration,
}

impl Counted {
    /// "N lines/s, M MB/s" over `d`.
    pub fn rate(&self, d: Duration) -> String {
        let secs = d.as_secs_f64().max(1e-9);
        format!(
            "{:.0} lines/s, {:.1} MB/s",
            self.lines as f64 / secs,
            self.bytes as f64 / 1e6 / secs
        )
    }

    /// The steady rate and, after it, the rate counting the `ssh` start.
    pub fn summary(&self) -> String {
        format!(
            "{} (first line to last); {} counting the ssh start",
            self.rate(self.streaming),
            self.rate(self.total)
        )
    }
}
