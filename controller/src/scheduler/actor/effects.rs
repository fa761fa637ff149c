//! Side effects the actor starts and forgets: tracker writes, workspace removal, and notes in an issue's log.

use super::*;
use crate::tracker::outbox::key_part;

impl Actor {
    /// Moves an issue in the tracker through the durable outbox (retried until the tracker takes it, never
    /// lost across restarts). With `overlay`, the issue is treated as already moved until the tracker
    /// shows it, so a finished issue is not dispatched again in between.
    pub(super) fn write_state(&mut self, id: &str, state: &str, overlay: bool) {
        let key = format!("move:{}:{}", key_part(id), uuid::Uuid::new_v4().simple());
        let write = TrackerWrite::MoveState {
            state: state.to_string(),
        };
        match self.outbox.enqueue(&key, id, write) {
            Ok(_) => {
                if overlay {
                    self.pending_moves.insert(id.to_string(), (state.to_string(), key));
                }
                if let Some(i) = self.issues.get_mut(id) {
                    i.state = state.to_string();
                }
                self.note(id, LogLevel::Info, format!("Moving to {state} in the tracker"));
            }
            Err(e) => self.note(id, LogLevel::Error, format!("Could not queue the move to {state}: {e}")),
        }
    }

    /// Posts a comment through the durable outbox; `key` makes it idempotent (posted once, even when a
    /// first attempt's answer was lost).
    pub(super) fn write_comment(&mut self, id: &str, key: &str, body: String) {
        if let Err(e) = self.outbox.enqueue(key, id, TrackerWrite::Comment { body }) {
            self.note(id, LogLevel::Error, format!("Could not queue a tracker comment: {e}"));
        }
    }

    /// Records the issue's branch in the tracker through the outbox.
    pub(super) fn write_branch(&mut self, id: &str, branch: &str) {
        let key = format!("branch:{}:{}", key_part(id), key_part(branch));
        if let Err(e) = self.outbox.enqueue(
            &key,
            id,
            TrackerWrite::RecordBranch {
                branch: branch.to_string(),
            },
        ) {
            self.note(id, LogLevel::Warn, format!("Could not queue recording the branch: {e}"));
        }
    }

    /// Drops overlays of state moves the outbox gave up on (the tracker refused them for good), so the
    /// issue is judged by its real state again.
    pub(super) fn check_pending_moves(&mut self) {
        let failed: Vec<(String, String)> = self
            .pending_moves
            .iter()
            .filter(|(_, (_, key))| self.outbox.status_of(key).ok().flatten().as_deref() == Some("failed"))
            .map(|(id, (state, _))| (id.clone(), state.clone()))
            .collect();
        for (id, state) in failed {
            self.pending_moves.remove(&id);
            self.note(
                &id,
                LogLevel::Error,
                format!("The tracker refused the move to {state}; see the outbox"),
            );
        }
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
        // Also in the controller's own log, so `GET /logs?identifier=` can follow one issue.
        match level {
            LogLevel::Info => tracing::info!(issue = %id, "{}", entry.message),
            LogLevel::Warn => tracing::warn!(issue = %id, "{}", entry.message),
            LogLevel::Error => tracing::error!(issue = %id, "{}", entry.message),
        }
        self.tasks.spawn(async move {
            hub.publish(&id, entry).await;
        });
    }

    /// Starts removing the worktrees once every run stopped for a `DELETE /workspaces` has ended, so no
    /// agent is still writing into a folder that is going away.
    pub(super) fn clear_when_runs_ended(&mut self) {
        if self.clearing == Clearing::WaitingForRuns
            && !self.runs.values().any(|r| r.stop == Some(StopReason::Clearing))
        {
            self.clearing = Clearing::Removing;
            self.clear_workspaces();
        }
    }

    /// Removes every worktree on every host in the background, then reports `WorkspacesCleared`.
    fn clear_workspaces(&mut self) {
        let tx = self.cmd_tx.clone();
        let links: Vec<(String, HostLink)> = self.hosts.iter().map(|h| (h.name.clone(), h.link.clone())).collect();
        let hub = self.hub.clone();
        let hooks = Hooks {
            before_remove: self.config().hooks.before_remove.clone(),
            timeout_ms: self.config().hooks.timeout_ms,
            ..Hooks::default()
        };
        self.tasks.spawn(async move {
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
            let _ = tx.send(Command::WorkspacesCleared).await;
        });
    }
}
