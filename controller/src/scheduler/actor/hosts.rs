//! The actor's host pool: one link per configured host, placement views, link events, and keeping the pool in step with the configuration.

use super::*;

impl Actor {
    pub(super) fn link_settings(&self) -> LinkSettings {
        let ssh = &self.config().ssh;
        LinkSettings {
            workspace_root: self.config().workspace.root.clone(),
            handshake_timeout: Duration::from_millis(ssh.connect_timeout_ms.max(1000) * 2),
            // Pings renew the lease on the host's sessions, so several fit into one lease.
            ping_interval: Duration::from_millis(
                (ssh.keepalive_interval_ms / 3)
                    .clamp(500, 5000)
                    .min(ssh.host_lost_after_ms / 4)
                    .max(100),
            ),
            ..LinkSettings::default()
        }
    }

    pub(super) fn connector_for(&self, name: &str) -> Result<Arc<dyn Connector>, String> {
        if name == LOCAL_HOST {
            let worker = self
                .worker_binary
                .clone()
                .or_else(|| find_worker_binary(&self.config().ssh.worker_path))
                .ok_or_else(|| {
                    "itervox-worker was not found next to the controller or on PATH (set ssh.worker_path)".to_string()
                })?;
            return Ok(Arc::new(LocalConnector::new(worker)));
        }
        crate::hosts::remote_connector(name, self.config())
    }

    pub(super) fn add_host(&mut self, name: &str, description: &str) {
        let link = match self.connector_for(name) {
            Ok(connector) => HostLink::spawn(
                name.to_string(),
                connector,
                self.link_settings(),
                self.link_tx.clone(),
                self.cancel.child_token(),
            ),
            Err(e) => {
                // A host we cannot even try to reach still shows in the pool, down, with the reason.
                tracing::error!(host = name, error = %e, "Host cannot be connected");
                HostLink::spawn(
                    name.to_string(),
                    Arc::new(FailingConnector(e)),
                    self.link_settings(),
                    self.link_tx.clone(),
                    self.cancel.child_token(),
                )
            }
        };
        self.hosts.push(HostEntry {
            name: name.to_string(),
            description: description.to_string(),
            link,
            draining: false,
            removing: false,
        });
    }

    pub(super) fn setup_hosts(&mut self) {
        let names: Vec<(String, String)> = if self.config().agent.ssh_hosts.is_empty() {
            vec![(LOCAL_HOST.to_string(), "this machine".to_string())]
        } else {
            self.config()
                .agent
                .ssh_hosts
                .iter()
                .map(|h| {
                    let d = self
                        .config()
                        .agent
                        .ssh_host_descriptions
                        .get(h)
                        .cloned()
                        .unwrap_or_default();
                    (h.clone(), d)
                })
                .collect()
        };
        for (name, description) in names {
            self.add_host(&name, &description);
        }
    }

    pub(super) fn host(&self, name: &str) -> Option<&HostEntry> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub(super) fn running_on(&self, host: &str) -> u32 {
        self.runs.values().filter(|r| r.record.host == host).count() as u32
    }

    pub(super) fn host_views(&self) -> Vec<HostView> {
        let cap = self.config().agent.max_concurrent_agents_per_host;
        self.hosts
            .iter()
            .filter(|h| !h.removing)
            .map(|h| {
                let st = h.link.status();
                HostView {
                    name: h.name.clone(),
                    up: h.link.is_up(),
                    draining: h.draining,
                    running: self.running_on(&h.name),
                    capacity: cap,
                    load1: st.load1,
                    cpus: st.cpus,
                }
            })
            .collect()
    }

    pub(super) fn on_link(&mut self, host: String, event: LinkEvent) {
        self.dirty = true;
        match event {
            LinkEvent::Connected(hello) => {
                tracing::info!(host = %host, worker = %hello.worker_version, sessions = hello.sessions.len(), "Host connected");
                // Sessions this controller gave up on while the host was away are cancelled now, so an
                // issue never runs twice.
                let stale = self.store.with(|s| s.stale_sessions(&host)).unwrap_or_default();
                if !stale.is_empty()
                    && let Some(h) = self.host(&host)
                {
                    let link = h.link.clone();
                    let store = self.store.clone();
                    let grace = self.cancel_grace;
                    let host2 = host.clone();
                    self.tasks.spawn(async move {
                        for session in stale {
                            let body = RequestBody::Cancel(Cancel { session_id: session.clone(), grace_ms: grace.as_millis() as u64 });
                            match link.call::<serde_json::Value>(body).await {
                                Ok(_) => {
                                    tracing::info!(host = %host2, session = %session, "Cancelled a stale session");
                                    let _ = store.with(|s| s.remove_stale_session(&host2, &session));
                                }
                                Err(e) if e.refused_code().is_some() => {
                                    let _ = store.with(|s| s.remove_stale_session(&host2, &session));
                                }
                                Err(e) => tracing::warn!(host = %host2, session = %session, error = %e, "Could not cancel a stale session yet"),
                            }
                        }
                    });
                }
                self.dispatch_pass();
            }
            LinkEvent::Down(reason) => {
                tracing::warn!(host = %host, reason = %reason, "Host unreachable");
            }
            LinkEvent::Health => {}
        }
    }

    /// Makes the pool match the configuration's host list.
    pub(super) fn sync_hosts(&mut self) {
        let wanted: Vec<String> = if self.config().agent.ssh_hosts.is_empty() {
            vec![LOCAL_HOST.to_string()]
        } else {
            self.config().agent.ssh_hosts.clone()
        };
        for name in &wanted {
            match self.hosts.iter_mut().find(|h| &h.name == name) {
                Some(h) => {
                    h.description = self
                        .workflow
                        .config
                        .agent
                        .ssh_host_descriptions
                        .get(name)
                        .cloned()
                        .unwrap_or(h.description.clone());
                    h.removing = false;
                    h.draining = false;
                }
                None => {
                    let d = self
                        .config()
                        .agent
                        .ssh_host_descriptions
                        .get(name)
                        .cloned()
                        .unwrap_or_default();
                    self.add_host(name, &d);
                }
            }
        }
        let gone: Vec<String> = self
            .hosts
            .iter()
            .filter(|h| !wanted.contains(&h.name) && !h.removing)
            .map(|h| h.name.clone())
            .collect();
        for name in gone {
            self.remove_host(&name, true);
        }
    }

    /// Removes a host: with `drain` its sessions finish first; without, they are stopped and retried
    /// elsewhere.
    pub(super) fn remove_host(&mut self, name: &str, drain: bool) {
        let Some(h) = self.hosts.iter_mut().find(|h| h.name == name) else {
            return;
        };
        h.draining = true;
        h.removing = true;
        if !drain {
            let runs: Vec<String> = self
                .runs
                .iter()
                .filter(|(_, r)| r.record.host == name)
                .map(|(id, _)| id.clone())
                .collect();
            for run_id in runs {
                self.stop_run(&run_id, StopReason::HostRemoved);
            }
        }
        self.dirty = true;
        // A host with nothing left to finish goes at once (so a second DELETE is a 404).
        self.drop_empty_leaving_hosts();
    }

    /// Removes the hosts that are leaving the pool (removed or drained) and have no session left.
    pub(super) fn drop_empty_leaving_hosts(&mut self) {
        let done: Vec<String> = self
            .hosts
            .iter()
            .filter(|h| h.removing && self.running_on(&h.name) == 0)
            .map(|h| h.name.clone())
            .collect();
        for name in done {
            if let Some(i) = self.hosts.iter().position(|h| h.name == name) {
                let h = self.hosts.remove(i);
                h.link.shutdown();
                self.dirty = true;
            }
        }
    }

    pub(in crate::scheduler) fn has_host(&self, name: &str) -> bool {
        self.hosts.iter().any(|h| h.name == name && !h.removing)
    }

    /// Whether a host is still in the pool only until its sessions end: removed from the configuration
    /// (drained, or stopped and not yet gone).
    pub(in crate::scheduler) fn is_leaving(&self, name: &str) -> bool {
        self.hosts.iter().any(|h| h.name == name && h.removing)
    }

    pub(in crate::scheduler) fn remove_host_now(&mut self, name: &str, drain: bool) {
        self.remove_host(name, drain);
        if !self.hosts.iter().any(|h| !h.removing) {
            self.add_host(LOCAL_HOST, "this machine");
        }
    }
}
