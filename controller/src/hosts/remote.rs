//! The remote host transport: one long-lived russh connection per host, reused across worker streams,
//! on which `itervox-worker serve --stdio` runs in an exec channel. With `ssh.install_worker`, the
//! controller's matching worker binary is uploaded over the same connection first when it is missing or
//! of another version.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::host_spec::HostSpec;
use super::install::{WorkerVersion, ensure_worker, worker_command};
use super::link::{Connector, Transport};
use super::local::find_worker_binary;
use super::ssh::{SshClient, SshConnection};
use crate::config::SshConfig;

/// Opens worker streams to one host over SSH.
#[derive(Debug)]
pub struct SshConnector {
    spec: HostSpec,
    client: SshClient,
    worker_path: String,
    install: bool,
    /// The connection in use; a new one is made only when it has died.
    conn: Mutex<Option<SshConnection>>,
    /// The worker path the last `connect` installed or checked, reused by `connect_bulk`.
    ready_path: Mutex<Option<String>>,
}

impl SshConnector {
    pub fn new(spec: HostSpec, ssh: &SshConfig) -> SshConnector {
        SshConnector {
            spec,
            client: SshClient::from_config(ssh),
            worker_path: ssh.worker_path.clone(),
            install: ssh.install_worker,
            conn: Mutex::new(None),
            ready_path: Mutex::new(None),
        }
    }

    async fn connection(&self) -> Result<SshConnection, String> {
        let cached = self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(c) = cached
            && !c.is_closed()
        {
            return Ok(c);
        }
        let c = self.client.connect(&self.spec).await.map_err(|e| e.to_string())?;
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
        Ok(c)
    }
}

#[async_trait]
impl Connector for SshConnector {
    async fn connect(&self) -> Result<Transport, String> {
        let conn = self.connection().await?;
        let path = self.ready_worker(&conn).await?;
        *self.ready_path.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.clone());
        self.serve(conn, &path).await
    }

    /// The bulk stream runs the worker the main stream just checked, on the same connection.
    async fn connect_bulk(&self) -> Result<Transport, String> {
        let ready = self.ready_path.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match ready {
            Some(path) => self.serve(self.connection().await?, &path).await,
            None => self.connect().await,
        }
    }
}

impl SshConnector {
    /// The worker's path on the host, installing it first with `ssh.install_worker`.
    async fn ready_worker(&self, conn: &SshConnection) -> Result<String, String> {
        Ok(if self.install {
            let local = find_worker_binary("itervox-worker")
                .ok_or("ssh.install_worker is set but no local itervox-worker binary was found to upload")?;
            let outcome = ensure_worker(conn, &self.worker_path, &local, &WorkerVersion::ours())
                .await
                .map_err(|e| format!("installing the worker on {}: {e}", self.spec))?;
            tracing::info!(host = %self.spec, path = %outcome.path, action = ?outcome.action, "Worker ready");
            outcome.path
        } else {
            self.worker_path.clone()
        })
    }

    /// Runs `serve --stdio` in a new exec channel on `conn`.
    async fn serve(&self, conn: SshConnection, path: &str) -> Result<Transport, String> {
        let channel = conn
            .exec(&worker_command(path, &["serve", "--stdio"]))
            .await
            .map_err(|e| e.to_string())?;
        let mut stderr = channel.stderr;
        let host = self.spec.to_string();
        tokio::spawn(async move {
            while let Some(line) = stderr.next_line().await {
                tracing::debug!(target: "itervox::worker", host = %host, "{line}");
            }
        });
        let latency_conn = conn.clone();
        Ok(Transport {
            reader: Box::new(channel.stdout),
            writer: Box::new(channel.stdin),
            guard: Box::new((conn.clone(), channel.control, channel.exit)),
            closed: Some(conn.closed_token()),
            latency: Some(Arc::new(move || {
                latency_conn.last_latency().map(|d| d.as_secs_f64() * 1000.0)
            })),
        })
    }
}
