//! Side effects the actor starts and forgets: tracker writes, workspace removal, and notes in an issue's log.

use super::*;

impl Actor {
    /// Moves an issue in the tracker. With `overlay`, the issue is treated as already moved until the
    /// tracker shows it (so a finished issue is not dispatched again in between).
    pub(super) fn write_state(&mut self, id: &str, state: &str, overlay: bool) {
        if overlay {
            self.pending_moves.insert(id.to_string(), state.to_string());
        }
        if let Some(i) = self.issues.get_mut(id) {
            i.state = state.to_string();
        }
        let tracker = self.tracker.clone();
        let tx = self.cmd_tx.clone();
        let (id, state) = (id.to_string(), state.to_string());
        self.tasks.spawn(async move {
            let mut delay = Duration::from_secs(1);
            let mut error = None;
            for _ in 0..5 {
                match tracker.move_state(&id, &state).await {
                    Ok(()) => {
                        error = None;
                        break;
                    }
                    Err(e) => {
                        error = Some(e.to_string());
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
            let _ = tx
                .send(Command::TrackerWriteDone {
                    identifier: id,
                    state: Some(state),
                    error,
                })
                .await;
        });
    }

    pub(super) fn write_comment(&mut self, id: &str, body: String) {
        let tracker = self.tracker.clone();
        let tx = self.cmd_tx.clone();
        let id = id.to_string();
        self.tasks.spawn(async move {
            let error = tracker.add_comment(&id, &body).await.err().map(|e| e.to_string());
            let _ = tx
                .send(Command::TrackerWriteDone {
                    identifier: id,
                    state: None,
                    error,
                })
                .await;
        });
    }

    pub(super) fn remove_workspace(&mut self, id: &str, host: &str) {
        let Some(link) = self.host(host).map(|h| h.link.clone()) else {
            return;
        };
        let cfg = &self.config().hooks;
        let hooks = Hooks {
            before_remove: cfg.before_remove.clone(),
            timeout_ms: cfg.timeout_ms,
            ..Hooks::default()
        };
        let tx = self.cmd_tx.clone();
        let id = id.to_string();
        self.tasks.spawn(async move {
            let body = RequestBody::RemoveWorkspace(itervox_protocol::worker::RemoveWorkspace {
                issue: id.clone(),
                hooks,
            });
            let (message, warn) = match link.call::<itervox_protocol::worker::WorkspaceRemoved>(body).await {
                Ok(r) if r.removed => ("Workspace removed".to_string(), false),
                Ok(_) => ("No workspace to remove".to_string(), false),
                Err(e) => (format!("Could not remove the workspace: {e}"), true),
            };
            let _ = tx
                .send(Command::Note {
                    identifier: id,
                    message,
                    warn,
                })
                .await;
        });
    }

    pub(super) fn note(&self, id: &str, level: LogLevel, message: impl Into<String>) {
        let hub = self.hub.clone();
        let id = id.to_string();
        let entry = log_entry(level, message);
        self.tasks.spawn(async move {
            hub.publish(&id, entry).await;
        });
    }

    pub(super) fn clear_workspaces(&mut self) {
        let links: Vec<(String, HostLink)> = self.hosts.iter().map(|h| (h.name.clone(), h.link.clone())).collect();
        let hub = self.hub.clone();
        let hooks = Hooks {
            before_remove: self.config().hooks.before_remove.clone(),
            timeout_ms: self.config().hooks.timeout_ms,
            ..Hooks::default()
        };
        self.tasks.spawn(async move {
            // Give stopping sessions a moment to exit before their worktrees go away.
            tokio::time::sleep(Duration::from_millis(500)).await;
            for (host, link) in links {
                let list = match link
                    .call::<itervox_protocol::worker::WorkspaceList>(RequestBody::ListWorkspaces)
                    .await
                {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(host = %host, error = %e, "Could not list workspaces to clear");
                        continue;
                    }
                };
                for ws in list.workspaces {
                    let body = RequestBody::RemoveWorkspace(itervox_protocol::worker::RemoveWorkspace {
                        issue: ws.issue.clone(),
                        hooks: hooks.clone(),
                    });
                    let message = match link.call::<itervox_protocol::worker::WorkspaceRemoved>(body).await {
                        Ok(_) => format!("Workspace {} removed from {host}", ws.path),
                        Err(e) => format!("Could not remove workspace {} on {host}: {e}", ws.path),
                    };
                    tracing::info!(host = %host, issue = %ws.issue, "{message}");
                    hub.publish(&ws.issue, log_entry(LogLevel::Info, message)).await;
                }
            }
        });
    }
}
