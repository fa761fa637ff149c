//! A real `itervox` controller process for end-to-end tests: started from the built binary on an
//! ephemeral port, killed with SIGKILL or stopped with SIGTERM, and restarted on the same state.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::binaries::bin_path;

/// A running controller.
#[derive(Debug)]
pub struct ControllerProcess {
    child: Child,
    pub base: String,
    pub workflow: PathBuf,
    pub state_dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

impl ControllerProcess {
    /// Starts `itervox run --workflow <workflow> --port 0 --state-dir <state_dir>` and waits until it
    /// serves `/api/v1/health`.
    pub async fn start(workflow: &Path, state_dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<ControllerProcess> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::spawn(workflow.to_path_buf(), state_dir.to_path_buf(), env).await
    }

    /// Starts `itervox demo --port 0 --dir <dir>` (the demo project is created in `dir`, which must not
    /// hold one yet) and waits until it serves `/api/v1/health`. `restart` runs the demo's WORKFLOW.md
    /// with `itervox run`.
    pub async fn start_demo(dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<ControllerProcess> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut cmd = Command::new(bin_path("itervox"));
        cmd.args(["demo", "--port", "0", "--dir"]).arg(dir);
        let log_dir = dir.with_extension("logs");
        Self::launch(cmd, dir.join("WORKFLOW.md"), dir.join(".itervox/state"), env, &log_dir).await
    }

    async fn spawn(
        workflow: PathBuf,
        state_dir: PathBuf,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<ControllerProcess> {
        let mut cmd = Command::new(bin_path("itervox"));
        cmd.args(["run", "--port", "0", "--workflow"])
            .arg(&workflow)
            .arg("--state-dir")
            .arg(&state_dir);
        let log_dir = state_dir.clone();
        Self::launch(cmd, workflow, state_dir, env, &log_dir).await
    }

    async fn launch(
        mut cmd: Command,
        workflow: PathBuf,
        state_dir: PathBuf,
        env: Vec<(String, String)>,
        log_dir: &Path,
    ) -> anyhow::Result<ControllerProcess> {
        std::fs::create_dir_all(log_dir)?;
        let log = log_dir.join(format!("controller-{}.stderr", std::process::id()));
        cmd.env("ITERVOX_LOG", "info,itervox=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("starting itervox")?;
        let stderr = child.stderr.take().expect("stderr");
        let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
        let log_path = log.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut out = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .await
                .ok();
            let mut lines = BufReader::new(stderr).lines();
            let mut url_tx = Some(url_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("API http://").nth(1)
                    && let Some(tx) = url_tx.take()
                {
                    let _ = tx.send(format!("http://{}", rest.trim().trim_end_matches("/api/v1")));
                }
                if let Some(f) = out.as_mut() {
                    let _ = f.write_all(line.as_bytes()).await;
                    let _ = f.write_all(b"\n").await;
                }
            }
        });
        let Ok(Ok(base)) = tokio::time::timeout(Duration::from_secs(30), url_rx).await else {
            let _ = child.start_kill();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("itervox did not start; its output:\n{text}");
        };
        let proc = ControllerProcess {
            child,
            base,
            workflow,
            state_dir,
            env,
            log,
        };
        proc.wait_health().await?;
        Ok(proc)
    }

    async fn wait_health(&self) -> anyhow::Result<()> {
        let client = http_client();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{}/api/v1/health", self.base)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("controller at {} never became healthy", self.base)
    }

    /// The API base, e.g. `http://127.0.0.1:41234/api/v1`.
    pub fn api(&self) -> String {
        format!("{}/api/v1", self.base)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL, then wait for the process to be gone.
    pub async fn kill9(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM, then wait (at most 20 s) for a clean exit.
    pub async fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        Ok(tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await??)
    }

    /// A new controller on the same workflow and state (after `kill9` or `terminate`).
    pub async fn restart(&self) -> anyhow::Result<ControllerProcess> {
        Self::spawn(self.workflow.clone(), self.state_dir.clone(), self.env.clone()).await
    }

    /// What the controller printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Installs rustls' process-wide crypto provider (reqwest is built without one); idempotent.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A reqwest client with the crypto provider installed.
fn http_client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::new()
}

/// A JSON API client with the bearer token when one is set.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, token: Option<&str>) -> Api {
        install_crypto();
        Api {
            base: base.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
            client: http_client(),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// Any request; returns the status and the JSON body (`Null` when not JSON).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let m = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut r = self.req(m, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, v) = self.call("GET", path, None).await?;
        anyhow::ensure!(status == 200, "GET {path}: {status} {v}");
        Ok(v)
    }

    pub async fn state(&self) -> anyhow::Result<Value> {
        self.get("/state").await
    }

    /// Polls `/state` until `pred` holds, at most `timeout`; returns the last state.
    pub async fn wait_state(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = Value::Null;
        while tokio::time::Instant::now() < deadline {
            if let Ok(s) = self.state().await {
                if pred(&s) {
                    return Ok(s);
                }
                last = s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "timed out after {timeout:?} waiting for {what}; last state:\n{}",
            serde_json::to_string_pretty(&last)?
        )
    }
}

/// Helpers to read a snapshot.
pub mod snap {
    use serde_json::Value;

    pub fn running<'a>(s: &'a Value, id: &str) -> Option<&'a Value> {
        s["running"].as_array()?.iter().find(|r| r["identifier"] == id)
    }

    pub fn retrying<'a>(s: &'a Value, id: &str) -> Option<&'a Value> {
        s["retrying"].as_array()?.iter().find(|r| r["identifier"] == id)
    }

    pub fn input_required<'a>(s: &'a Value, id: &str) -> Option<&'a Value> {
        s["inputRequired"].as_array()?.iter().find(|r| r["identifier"] == id)
    }

    pub fn paused(s: &Value, id: &str) -> bool {
        s["paused"].as_array().is_some_and(|p| p.iter().any(|x| x == id))
    }

    /// History rows of an issue, newest first.
    pub fn history<'a>(s: &'a Value, id: &str) -> Vec<&'a Value> {
        s["history"]
            .as_array()
            .map(|h| h.iter().filter(|r| r["identifier"] == id).collect())
            .unwrap_or_default()
    }
}
