//! The local host: the controller runs `itervox-worker serve --stdio` as a child process and speaks the
//! same protocol over its stdio that it speaks over SSH to remote hosts.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::link::{Connector, Transport};

/// The name the local host has in the pool, the API and history rows.
pub const LOCAL_HOST: &str = "local";

/// Starts the worker as a child of the controller.
#[derive(Debug, Clone)]
pub struct LocalConnector {
    pub worker: PathBuf,
}

impl LocalConnector {
    pub fn new(worker: PathBuf) -> Self {
        LocalConnector { worker }
    }
}

/// Finds the worker binary for the local host: `configured` when it is a path that exists, else
/// `itervox-worker` next to the controller's own executable, else `configured` looked up on PATH.
pub fn find_worker_binary(configured: &str) -> Option<PathBuf> {
    let configured_path = Path::new(configured);
    if configured_path.components().count() > 1 && configured_path.exists() {
        return Some(configured_path.to_path_buf());
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in [exe.parent(), exe.parent().and_then(Path::parent)]
            .into_iter()
            .flatten()
        {
            let candidate = dir.join("itervox-worker");
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let name = configured_path.file_name()?;
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Keeps the child alive for as long as the transport is in use; killing the serve process never stops
/// sessions (their supervisors are detached).
#[derive(Debug)]
struct ChildGuard(#[allow(dead_code)] Child);

#[async_trait]
impl Connector for LocalConnector {
    async fn connect(&self) -> Result<Transport, String> {
        let mut child = Command::new(&self.worker)
            .args(["serve", "--stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.worker.display()))?;
        let stdin = child.stdin.take().ok_or("worker stdin unavailable")?;
        let stdout = child.stdout.take().ok_or("worker stdout unavailable")?;
        if let Some(stderr) = child.stderr.take() {
            // The worker logs to stderr; forward it into the controller's log.
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!(target: "itervox::worker", host = LOCAL_HOST, "{line}");
                }
            });
        }
        Ok(Transport {
            reader: Box::new(stdout),
            writer: Box::new(stdin),
            guard: Box::new(ChildGuard(child)),
            closed: None,
            latency: None,
        })
    }
}
