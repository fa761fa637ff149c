//! Operator commands from the API, issue enrichment for `/issues`, and adopting a new configuration.

use super::*;

impl Actor {
    pub(super) fn handle(&mut self, cmd: Command) {
        self.dirty = true;
        match cmd {
            Command::Refresh(tx) => {
                let coalesced = self.poll_in_flight;
                self.start_poll(true);
                let _ = tx.send(crate::scheduler::RefreshAnswer {
                    coalesced,
                    queued_at: Utc::now(),
                });
            }
            Command::Cancel(id, tx) => {
                if let Some(run_id) = self.by_issue.get(&id).cloned() {
                    self.stop_run(&run_id, StopReason::UserCancel);
                    reply(tx, Ok(()));
                } else if self.retries.contains_key(&id) {
                    self.retries.remove(&id);
                    let _ = self.store.with(|s| s.remove_retry(&id));
                    let p = PausedRecord {
                        identifier: id.clone(),
                        reason: "user_cancelled".into(),
                        paused_at: Utc::now(),
                        host: None,
                        session_id: None,
                        agent_ref: None,
                        backend: None,
                    };
                    let _ = self.store.with(|s| s.set_paused(&p));
                    self.paused.insert(id.clone(), p);
                    self.note(
                        &id,
                        LogLevel::Warn,
                        "Cancelled by an operator while waiting to retry; the issue is paused",
                    );
                    reply(tx, Ok(()));
                } else {
                    reply(tx, Err(Refusal::NotRunning(id)));
                }
            }
            Command::Resume(id, tx) => match self.paused.remove(&id) {
                Some(p) => {
                    let _ = self.store.with(|s| s.remove_paused(&id));
                    if p.session_id.is_some() {
                        self.resume_sessions.insert(id.clone(), p);
                    }
                    self.note(&id, LogLevel::Info, "Resumed by an operator");
                    self.start_poll(true);
                    reply(tx, Ok(()));
                }
                None => reply(tx, Err(Refusal::NotPaused(id))),
            },
            Command::Terminate(id, tx) => {
                if let Some(run_id) = self.by_issue.get(&id).cloned() {
                    self.stop_run(&run_id, StopReason::Terminate);
                    reply(tx, Ok(()));
                } else if self.paused.remove(&id).is_some()
                    || self.inputs.remove(&id).is_some()
                    || self.retries.contains_key(&id)
                {
                    let _ = self.store.with(|s| {
                        s.remove_paused(&id)?;
                        s.remove_input(&id)
                    });
                    self.release(&id);
                    self.resume_sessions.remove(&id);
                    self.ensure_active(&id);
                    self.note(
                        &id,
                        LogLevel::Info,
                        "Terminated by an operator; the issue may be dispatched again",
                    );
                    self.start_poll(true);
                    reply(tx, Ok(()));
                } else {
                    reply(
                        tx,
                        Err(Refusal::NotFound(format!(
                            "issue {id} (neither running, paused nor waiting)"
                        ))),
                    );
                }
            }
            Command::Reanalyze(id, tx) => {
                if self.by_issue.contains_key(&id) {
                    reply(tx, Err(Refusal::Conflict(format!("issue {id} is running"))));
                    return;
                }
                self.forced.insert(id.clone());
                self.open_prs.remove(&id);
                let _ = self.store.with(|s| s.set_open_pr(&id, None));
                if self.paused.get(&id).is_some_and(|p| p.reason == "open_pr") {
                    self.paused.remove(&id);
                    let _ = self.store.with(|s| s.remove_paused(&id));
                }
                self.note(
                    &id,
                    LogLevel::Info,
                    "Re-analysis requested: dispatching despite the open pull request",
                );
                self.start_poll(true);
                reply(tx, Ok(()));
            }
            Command::AiReview(id, tx) => {
                if self.config().agent.reviewer_profile.is_none() {
                    reply(
                        tx,
                        Err(Refusal::BadRequest {
                            field: None,
                            message: "no reviewer profile is configured (PUT /api/v1/settings/reviewer)".into(),
                        }),
                    );
                    return;
                }
                if self.by_issue.contains_key(&id) {
                    reply(tx, Err(Refusal::Conflict(format!("issue {id} is running"))));
                    return;
                }
                let issue = self.issues.get(&id).cloned().unwrap_or_else(|| Issue {
                    id: id.clone(),
                    identifier: id.clone(),
                    title: id.clone(),
                    state: String::new(),
                    ..Issue::default()
                });
                let prefer = self.issue_hosts.get(&id).cloned();
                let views = self.host_views();
                match choose_host(
                    &views,
                    self.config().agent.dispatch_strategy,
                    &mut self.rr_cursor,
                    prefer.as_deref(),
                ) {
                    Some(i) => {
                        let host = views[i].name.clone();
                        self.dispatch(issue, &host, RunKind::Reviewer);
                        reply(tx, Ok(()));
                    }
                    None => reply(
                        tx,
                        Err(Refusal::Conflict(
                            "no host is available for the reviewer right now".into(),
                        )),
                    ),
                }
            }
            Command::SetProfile(id, profile, tx) => {
                let profile = profile.filter(|p| !p.is_empty());
                if let Some(p) = &profile
                    && !self.config().agent.profiles.contains_key(p)
                {
                    reply(
                        tx,
                        Err(Refusal::BadRequest {
                            field: Some("profile"),
                            message: format!("unknown profile {p:?}"),
                        }),
                    );
                    return;
                }
                let mut o = self.overrides.get(&id).cloned().unwrap_or_default();
                o.profile = profile.clone();
                let _ = self.store.with(|s| s.set_override(&id, &o));
                self.overrides.insert(id.clone(), o);
                reply(tx, Ok(profile));
            }
            Command::SetBackend(id, backend, tx) => {
                let mut o = self.overrides.get(&id).cloned().unwrap_or_default();
                o.backend = backend.map(|b| b.as_str().to_string());
                let _ = self.store.with(|s| s.set_override(&id, &o));
                let shown = o.backend.clone();
                self.overrides.insert(id.clone(), o);
                reply(tx, Ok(shown));
            }
            Command::ProvideInput(id, message, tx) => match self.inputs.get_mut(&id) {
                Some(input) => {
                    input.reply = Some(message);
                    let input = input.clone();
                    let _ = self.store.with(|s| s.set_input(&input));
                    self.note(
                        &id,
                        LogLevel::Info,
                        "Input provided by an operator; resuming the session",
                    );
                    self.dispatch_pass();
                    reply(tx, Ok(()));
                }
                None => reply(tx, Err(Refusal::NotInputRequired(id))),
            },
            Command::DismissInput(id, tx) => match self.inputs.remove(&id) {
                Some(input) => {
                    let _ = self.store.with(|s| s.remove_input(&id));
                    let p = PausedRecord {
                        identifier: id.clone(),
                        reason: "user_dismissed_input".into(),
                        paused_at: Utc::now(),
                        host: Some(input.host),
                        session_id: Some(input.session_id),
                        agent_ref: None,
                        backend: input.backend,
                    };
                    let _ = self.store.with(|s| s.set_paused(&p));
                    self.paused.insert(id.clone(), p);
                    self.note(
                        &id,
                        LogLevel::Info,
                        "Input dismissed by an operator; the issue is paused",
                    );
                    reply(tx, Ok(()));
                }
                None => reply(tx, Err(Refusal::NotInputRequired(id))),
            },
            Command::ListIssues(tx) => {
                let issues: Vec<Issue> = self.issues.values().cloned().collect();
                let _ = tx.send(issues.iter().map(|i| self.enrich(i)).collect());
            }
            Command::Enrich(issues, tx) => {
                let _ = tx.send(issues.iter().map(|i| self.enrich(i)).collect());
            }
            Command::IssueLink(id, tx) => {
                let host = self
                    .by_issue
                    .get(&id)
                    .and_then(|r| self.runs.get(r))
                    .map(|r| r.record.host.clone())
                    .or_else(|| self.issue_hosts.get(&id).cloned());
                let _ = tx.send(host.and_then(|h| self.host(&h).map(|e| e.link.clone())));
            }
            Command::AllLinks(tx) => {
                let _ = tx.send(self.hosts.iter().map(|h| h.link.clone()).collect());
            }
            Command::Settings(change, tx) => {
                let result = self.apply_settings(change);
                if result.is_ok() {
                    // Read-your-writes: a client that reads the state right after its change
                    // (`PUT /projects/filter`, then `GET /projects/filter`) sees it.
                    self.publish(true);
                }
                reply(tx, result);
            }
            Command::ClearWorkspaces(tx) => {
                if self.clearing == Clearing::Idle {
                    let runs: Vec<String> = self.runs.keys().cloned().collect();
                    for run_id in runs {
                        self.stop_run(&run_id, StopReason::Clearing);
                    }
                    self.clearing = Clearing::WaitingForRuns;
                    self.clear_when_runs_ended();
                }
                reply(tx, Ok(()));
            }
            Command::WorkspacesCleared => {
                self.clearing = Clearing::Idle;
                self.start_poll(true);
            }
            Command::PollDone(result) => self.on_poll(result),
            Command::Run { run_id, event } => self.on_run(run_id, event),
            Command::Link { host, event } => self.on_link(host, event),
            Command::ConfigReloaded(workflow) => self.on_reload(*workflow),
            Command::ConfigInvalid(e) => {
                tracing::error!(error = %e, "WORKFLOW.md has an invalid edit; keeping the last good configuration");
                self.config_invalid = Some(ConfigInvalid {
                    path: self.workflow.path.display().to_string(),
                    error: e.to_string(),
                });
            }
            Command::Note {
                identifier,
                message,
                warn,
            } => {
                self.note(&identifier, if warn { LogLevel::Warn } else { LogLevel::Info }, message);
            }
            Command::Drain => {
                self.draining = true;
            }
        }
    }

    pub(super) fn orchestrator_state(&self, id: &str) -> OrchestratorState {
        snapshot::orchestrator_state(
            self.by_issue.contains_key(id),
            self.retries.contains_key(id),
            self.paused.contains_key(id),
            self.inputs.contains_key(id),
        )
    }

    pub(super) fn enrich(&self, i: &Issue) -> TrackerIssue {
        let run = self.by_issue.get(&i.identifier).and_then(|r| self.runs.get(r));
        let last = self.history.iter().find(|h| h.identifier == i.identifier);
        let o = self.overrides.get(&i.identifier);
        TrackerIssue {
            identifier: i.identifier.clone(),
            title: i.title.clone(),
            state: i.state.clone(),
            description: i.description.clone(),
            url: i.url.clone(),
            labels: i.labels.clone(),
            priority: i.priority,
            branch_name: i.branch_name.clone(),
            blocked_by: i.blocked_by.iter().map(|b| b.identifier.clone()).collect(),
            comments: i
                .comments
                .iter()
                .map(|c| itervox_protocol::api::IssueComment {
                    author: c.author.clone(),
                    body: c.body.clone(),
                    created_at: c.created_at.map(|t| rfc3339(&t)),
                })
                .collect(),
            orchestrator_state: self.orchestrator_state(&i.identifier),
            ineligible_reason: if run.is_some() {
                None
            } else {
                self.reasons.get(&i.identifier).cloned()
            },
            agent_profile: o.and_then(|o| o.profile.clone()),
            agent_backend: o.and_then(|o| o.backend.clone()),
            turn_count: run.map(|r| r.record.turn_count).or(last.map(|h| h.turn_count)),
            tokens: run
                .map(|r| r.record.input_tokens + r.record.output_tokens)
                .or(last.map(|h| h.tokens)),
            last_message: run.and_then(|r| r.last_event.as_ref().map(|e| e.1.clone())),
            error: self
                .retries
                .get(&i.identifier)
                .and_then(|r| r.error.clone())
                .or_else(|| last.and_then(|h| h.error.clone())),
            pause_reason: self.paused.get(&i.identifier).map(|p| p.reason.clone()),
            worker_host: run
                .map(|r| r.record.host.clone())
                .or_else(|| self.issue_hosts.get(&i.identifier).cloned()),
            created_at: i.created_at.map(|t| rfc3339(&t)),
            updated_at: i.updated_at.map(|t| rfc3339(&t)),
        }
    }

    pub(super) fn on_reload(&mut self, workflow: Workflow) {
        tracing::info!(path = %workflow.path.display(), "WORKFLOW.md changed; applying the new configuration");
        self.adopt(workflow);
    }

    /// Makes `workflow` the configuration in force: rebuilds the tracker when its settings changed (the
    /// project filter alone is applied in place), syncs the host pool, and re-evaluates dispatch. Running
    /// sessions are untouched.
    pub(in crate::scheduler) fn adopt(&mut self, workflow: Workflow) {
        self.config_invalid = None;
        let old = std::mem::replace(&mut self.workflow, workflow);
        let mut old_tracker = old.config.tracker.clone();
        old_tracker.project_filter = self.config().tracker.project_filter.clone();
        if old_tracker != self.config().tracker {
            match crate::tracker::from_config(self.config()) {
                Ok(t) if self.config().tracker.kind != crate::config::TrackerKind::Memory => {
                    self.tracker = t.clone();
                    let _ = self.tracker_tx.send(t);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "The new tracker settings cannot be used; keeping the old tracker")
                }
            }
        }
        self.sync_hosts();
        self.next_poll = Instant::now();
        self.dispatch_pass();
    }

    pub(super) fn apply_settings(&mut self, change: SettingsChange) -> Result<serde_json::Value, Refusal> {
        crate::scheduler::settings::apply(self, change)
    }
}
