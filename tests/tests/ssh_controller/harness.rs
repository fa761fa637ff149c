//! The shared setup of the controller-over-SSH tests: a lab of real `sshd` build hosts, a project whose
//! WORKFLOW.md lists them in `agent.ssh_hosts` with an `ssh:` block pointing at the lab's key and
//! known_hosts, the real `itervox` controller on it, and readers of its API.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use itervox_tests::binaries::bin_path;
use itervox_tests::controller::{Api, ControllerProcess};
use itervox_tests::project::{IssueSpec, Project};
use itervox_tests::sshd::{SshHost, SshLab};
use serde_json::Value;

/// Generous limit for anything that should happen "soon" on a shared, noisy machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A lab with running hosts.
#[derive(Debug)]
pub struct Fleet {
    pub lab: SshLab,
    pub hosts: Vec<SshHost>,
}

impl Fleet {
    /// Starts one sshd per address and trusts each host's key in the lab's known_hosts.
    pub fn start(addrs: &[&str]) -> anyhow::Result<Fleet> {
        // reqwest (the API client) is built without a default TLS crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let lab = SshLab::new()?;
        let mut hosts = Vec::new();
        for addr in addrs {
            let host = lab.start_host(addr)?;
            lab.trust(&host)?;
            hosts.push(host);
        }
        Ok(Fleet { lab, hosts })
    }

    /// The hosts' names as the controller shows them (`root@127.0.0.2:PORT`).
    pub fn names(&self) -> Vec<String> {
        self.hosts.iter().map(SshHost::spec).collect()
    }
}

/// How the controller reaches the hosts.
#[derive(Debug, Clone)]
pub struct Setup {
    pub hosts: Vec<String>,
    pub strategy: &'static str,
    /// `agent.max_concurrent_agents_per_host`; 0 = unlimited.
    pub per_host: u32,
    /// `ssh.install_worker: true` (upload the worker) instead of `ssh.worker_path` = the built binary.
    pub install_worker: bool,
}

impl Setup {
    pub fn new(hosts: Vec<String>, strategy: &'static str, per_host: u32) -> Setup {
        Setup {
            hosts,
            strategy,
            per_host,
            install_worker: false,
        }
    }

    fn agent_yaml(&self) -> String {
        let hosts: Vec<String> = self.hosts.iter().map(|h| format!("\"{h}\"")).collect();
        format!(
            "  ssh_hosts: [{}]\n  dispatch_strategy: {}\n  max_concurrent_agents_per_host: {}\n",
            hosts.join(", "),
            self.strategy,
            self.per_host
        )
    }

    fn ssh_yaml(&self, lab: &SshLab) -> String {
        let worker = if self.install_worker {
            "  install_worker: true\n".to_string()
        } else {
            format!("  worker_path: {}\n", bin_path("itervox-worker").display())
        };
        format!(
            "ssh:\n  user: root\n  identity_file: {}\n  known_hosts: {}\n  strict_host_key_checking: yes\n  \
             connect_timeout_ms: 20000\n  keepalive_interval_ms: 3000\n{worker}",
            lab.client_key().private_key.display(),
            lab.known_hosts().display(),
        )
    }
}

/// A project, its controller and an API client.
#[derive(Debug)]
pub struct Controlled {
    pub project: Project,
    pub controller: ControllerProcess,
    pub api: Api,
}

impl Controlled {
    /// Writes the project (workspaces under each host's own HOME) and starts the controller.
    pub async fn start(lab: &SshLab, setup: &Setup, issues: &[IssueSpec]) -> anyhow::Result<Controlled> {
        let project = Project::new(issues, &setup.agent_yaml(), &setup.ssh_yaml(lab));
        // Each host keeps its worktrees and journals under its own HOME, like separate machines would.
        let text = fs_err::read_to_string(&project.workflow)?;
        let absolute = format!("  root: {}\n", project.workspaces.display());
        anyhow::ensure!(
            text.contains(&absolute),
            "the project's workflow has no workspace root line"
        );
        fs_err::write(
            &project.workflow,
            text.replace(&absolute, "  root: ~/.itervox/workspaces\n"),
        )?;
        let controller = ControllerProcess::start(&project.workflow, &project.state_dir, &[]).await?;
        let api = Api::new(&controller.api(), None);
        Ok(Controlled {
            project,
            controller,
            api,
        })
    }

    /// Starts the controller again on the same workflow and state (after `kill9` or `terminate`).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.controller = self.controller.restart().await?;
        self.api = Api::new(&self.controller.api(), None);
        Ok(())
    }

    /// Adds an issue to the local tracker while the controller runs (picked up by the next poll).
    pub fn add_issue(&self, id: &str, body: &str) -> anyhow::Result<()> {
        let text = format!(
            "---\nidentifier: {id}\ntitle: Issue {id}\nstate: Todo\ncreated: 2026-12-01T09:00:00Z\n---\n{body}\n"
        );
        let tmp = self.project.issues_dir.join(format!(".{id}.md.tmp"));
        fs_err::write(&tmp, text)?;
        fs_err::rename(&tmp, self.project.issues_dir.join(format!("{id}.md")))?;
        Ok(())
    }

    /// The `/ssh-hosts` rows by host name.
    pub async fn hosts(&self) -> anyhow::Result<BTreeMap<String, Value>> {
        let rows = self.api.get("/ssh-hosts").await?;
        Ok(rows
            .as_array()
            .context("/ssh-hosts is a list")?
            .iter()
            .map(|r| (r["host"].as_str().unwrap_or_default().to_string(), r.clone()))
            .collect())
    }

    /// Polls `/ssh-hosts` until `pred` holds for the row of `host`; returns that row.
    pub async fn wait_host(&self, host: &str, what: &str, pred: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut last = Value::Null;
        while tokio::time::Instant::now() < deadline {
            if let Ok(rows) = self.hosts().await {
                if let Some(row) = rows.get(host)
                    && pred(row)
                {
                    return Ok(row.clone());
                }
                last = serde_json::to_value(&rows)?;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "timed out after {PATIENCE:?} waiting for host {host} to be {what}; last /ssh-hosts:\n{}\ncontroller output tail:\n{}",
            serde_json::to_string_pretty(&last)?,
            tail(&self.controller.output(), 40)
        )
    }

    /// Waits until every listed host is `up`.
    pub async fn wait_all_up(&self, hosts: &[String]) -> anyhow::Result<()> {
        for h in hosts {
            self.wait_host(h, "up", |r| r["status"] == "up").await?;
        }
        Ok(())
    }

    /// Waits until every listed issue has a finished history row with `status`; returns the state.
    pub async fn wait_finished(&self, ids: &[&str], status: &str) -> anyhow::Result<Value> {
        self.api
            .wait_state(PATIENCE * 2, &format!("{ids:?} to finish {status}"), |s| {
                ids.iter().all(|id| {
                    history(s, id).iter().any(|r| r["status"] == status)
                        && !s["running"]
                            .as_array()
                            .is_some_and(|rs| rs.iter().any(|r| r["identifier"] == *id))
                })
            })
            .await
    }

    /// The issue's log entries from `/issues/{id}/logs`.
    pub async fn logs(&self, id: &str) -> anyhow::Result<Vec<Value>> {
        let v = self.api.get(&format!("/issues/{id}/logs")).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }
}

/// History rows of an issue, newest first.
pub fn history<'a>(s: &'a Value, id: &str) -> Vec<&'a Value> {
    s["history"]
        .as_array()
        .map(|h| h.iter().filter(|r| r["identifier"] == id).collect())
        .unwrap_or_default()
}

/// The running row of an issue.
pub fn running<'a>(s: &'a Value, id: &str) -> Option<&'a Value> {
    s["running"].as_array()?.iter().find(|r| r["identifier"] == id)
}

/// The running rows' `workerHost`s, counted per host.
pub fn running_per_host(s: &Value) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for r in s["running"].as_array().into_iter().flatten() {
        *out.entry(r["workerHost"].as_str().unwrap_or("<none>").to_string())
            .or_default() += 1;
    }
    out
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
