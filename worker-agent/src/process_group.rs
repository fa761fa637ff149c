//! Child processes in their own process group: spawning, signalling the whole group, terminating it with
//! a grace period (SIGTERM, then SIGKILL), reaping, and sweeping up what a group leaves behind. Used for
//! hooks, git, and the agent.

use std::process::ExitStatus;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How long a swept group gets between SIGTERM and SIGKILL when its leader has already exited.
pub const SWEEP_GRACE: Duration = Duration::from_secs(2);

/// A spawned process that leads its own process group.
#[derive(Debug)]
pub struct GroupChild {
    child: Child,
    pgid: u32,
    status: Option<ExitStatus>,
}

/// Spawns `cmd` as the leader of a new process group (pgid = its pid).
pub fn spawn(cmd: &mut Command) -> std::io::Result<GroupChild> {
    cmd.process_group(0).kill_on_drop(false);
    let child = cmd.spawn()?;
    let pgid = child
        .id()
        .ok_or_else(|| std::io::Error::other("the spawned process has no pid"))?;
    Ok(GroupChild {
        child,
        pgid,
        status: None,
    })
}

impl GroupChild {
    /// The leader's pid, which is also the group id.
    pub fn pid(&self) -> u32 {
        self.pgid
    }

    /// The underlying child, to take its stdio.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits for the leader to exit and reaps it. Cancel-safe.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self.child.wait().await?;
        self.status = Some(status);
        Ok(status)
    }

    /// Sends `signal` to every process of the group.
    pub fn signal(&self, signal: Signal) -> std::io::Result<bool> {
        signal_group(self.pgid, signal)
    }

    /// Stops the whole group: SIGTERM, up to `grace` for the leader to exit, then SIGKILL; reaps the
    /// leader and sweeps the rest of the group.
    pub async fn terminate(&mut self, grace: Duration) -> std::io::Result<ExitStatus> {
        if self.status.is_none() {
            self.signal(Signal::SIGTERM)?;
            if tokio::time::timeout(grace, self.wait()).await.is_err() {
                self.signal(Signal::SIGKILL)?;
            }
        }
        let status = self.wait().await?;
        sweep_group(self.pgid, Duration::ZERO, false).await;
        Ok(status)
    }
}

impl Drop for GroupChild {
    fn drop(&mut self) {
        if self.status.is_none() {
            // Never leave a running group behind; Tokio reaps the dropped leader in the background.
            let _ = signal_group(self.pgid, Signal::SIGKILL);
        }
    }
}

/// Sends `signal` to process group `pgid`. `Ok(false)` when the group no longer exists.
pub fn signal_group(pgid: u32, signal: Signal) -> std::io::Result<bool> {
    let Ok(raw) = i32::try_from(pgid) else {
        return Ok(false);
    };
    if raw <= 1 {
        // Never signal "every process" or init by accident.
        return Ok(false);
    }
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

/// Sends `signal` to one process. `Ok(false)` when it no longer exists.
pub fn signal_process(pid: u32, signal: Signal) -> std::io::Result<bool> {
    let Ok(raw) = i32::try_from(pid) else {
        return Ok(false);
    };
    if raw <= 1 {
        return Ok(false);
    }
    match kill(Pid::from_raw(raw), signal) {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

/// True while any process (zombies included) is in group `pgid`.
pub fn group_exists(pgid: u32) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    if raw <= 1 {
        return false;
    }
    !matches!(killpg(Pid::from_raw(raw), None), Err(Errno::ESRCH))
}

/// Ends what is left of a group whose leader has exited: SIGTERM, up to `grace` for it to go, SIGKILL,
/// and a short wait. With `reap_adopted`, zombies adopted by this process (a child subreaper) are
/// reaped meanwhile; pass it only when this process has no other child it waits for.
pub async fn sweep_group(pgid: u32, grace: Duration, reap_adopted: bool) {
    if !group_exists(pgid) {
        return;
    }
    let _ = signal_group(pgid, Signal::SIGTERM);
    if wait_group_gone(pgid, grace, reap_adopted).await {
        return;
    }
    let _ = signal_group(pgid, Signal::SIGKILL);
    wait_group_gone(pgid, Duration::from_secs(2), reap_adopted).await;
}

async fn wait_group_gone(pgid: u32, within: Duration, reap_adopted: bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if reap_adopted {
            reap_adopted_children();
        }
        if !group_exists(pgid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reaps every exited child of this process without blocking (for a child subreaper whose adopted
/// orphans would otherwise stay zombies). Must not run while a child this process waits for is alive,
/// since it could reap that child's status first.
pub fn reap_adopted_children() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

/// A short human description of how a process ended ("exit code 3", "killed by SIGKILL").
pub fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("killed by {}", s.as_str()),
            Err(_) => format!("killed by signal {sig}"),
        },
        (None, None) => "unknown exit status".to_string(),
    }
}

#[cfg(test)]
mod tests;
