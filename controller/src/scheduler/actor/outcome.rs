//! Run outcomes: stopping runs, recording their progress, and deciding what follows a finished run (history, retries, pauses, input, completion).

use super::*;

impl Actor {
    pub(super) fn stop_run(&mut self, run_id: &str, reason: StopReason) {
        let Some(r) = self.runs.get_mut(run_id) else { return };
        if r.stop.is_some() {
            return;
        }
        let id = r.record.identifier.clone();
        let msg = match &reason {
            StopReason::UserCancel => "Cancelled by an operator; the issue is paused".to_string(),
            StopReason::Terminate => "Terminated by an operator".to_string(),
            StopReason::Terminal(s) => format!("The issue moved to {s}; stopping its agent"),
            StopReason::LeftActive(s) => format!("The issue left the active states ({s}); stopping its agent"),
            StopReason::Stalled => "No progress for too long; stopping the stalled agent".to_string(),
            StopReason::HostLost => format!("Host {} unreachable for too long; the session is lost", r.record.host),
            StopReason::HostRemoved => format!("Host {} was removed; stopping its session", r.record.host),
            StopReason::Clearing => "Workspaces are being cleared; stopping the agent".to_string(),
        };
        r.stop = Some(reason.clone());
        r.cancel.cancel();
        let host = r.record.host.clone();
        let session = r.record.session_id.clone();
        if reason == StopReason::HostLost {
            let _ = self.store.with(|s| s.add_stale_session(&host, &session));
        }
        self.note(&id, LogLevel::Warn, msg);
        self.dirty = true;
    }

    pub(super) fn on_run(&mut self, run_id: String, event: RunEvent) {
        self.dirty = true;
        match event {
            RunEvent::Started { workspace } => {
                if let Some(r) = self.runs.get_mut(&run_id) {
                    r.last_progress = Instant::now();
                    if workspace.is_some() {
                        r.record.workspace = workspace;
                        let rec = r.record.clone();
                        let _ = self.store.with(|s| {
                            // Keep the progress fields the run itself saved.
                            let mut stored = s.run(&rec.run_id)?.unwrap_or(rec.clone());
                            stored.workspace = rec.workspace.clone();
                            s.save_run(&stored)
                        });
                    }
                }
            }
            RunEvent::Progress {
                last_event,
                last_message,
                at,
                subagents,
            } => {
                if let Some(r) = self.runs.get_mut(&run_id) {
                    r.last_progress = Instant::now();
                    r.last_event = Some((last_event, last_message, at));
                    r.subagents = subagents;
                }
            }
            RunEvent::PrSeen(url) => {
                if let Some(r) = self.runs.get_mut(&run_id)
                    && r.record.pr_url.is_none()
                {
                    r.record.pr_url = Some(url);
                }
            }
            RunEvent::Turn {
                turn_count,
                input_tokens,
                output_tokens,
                cost_usd,
                agent_ref,
            } => {
                if let Some(r) = self.runs.get_mut(&run_id) {
                    r.last_progress = Instant::now();
                    r.record.turn_count = turn_count;
                    r.record.input_tokens = input_tokens;
                    r.record.output_tokens = output_tokens;
                    r.record.cost_usd = cost_usd;
                    r.record.agent_ref = agent_ref;
                }
            }
            RunEvent::Finished(outcome) => {
                self.on_finished(&run_id, outcome);
                self.clear_when_runs_ended();
            }
        }
    }

    pub(super) fn on_finished(&mut self, run_id: &str, outcome: RunOutcome) {
        let Some(entry) = self.runs.remove(run_id) else { return };
        let id = entry.record.identifier.clone();
        if self.by_issue.get(&id).is_some_and(|r| r == run_id) {
            self.by_issue.remove(&id);
        }
        // The stored record has the progress the run saved; merge our view.
        let mut record = self
            .store
            .with(|s| s.run(run_id))
            .ok()
            .flatten()
            .unwrap_or_else(|| entry.record.clone());
        record.finished_at = Some(Utc::now());
        record.workspace = record.workspace.or(entry.record.workspace.clone());
        let exit: Option<SessionExit> = match &outcome {
            RunOutcome::Succeeded { exit }
            | RunOutcome::Failed { exit, .. }
            | RunOutcome::InputRequired { exit, .. } => exit.clone(),
            RunOutcome::Stopped => None,
        };
        if let Some(x) = &exit {
            record.branch = x.branch.clone().or(record.branch);
            record.pr_url = x.pr_url.clone().or(record.pr_url);
        }
        record.pr_url = record.pr_url.or(entry.record.pr_url.clone());
        let attempt = record.attempt;
        let host = record.host.clone();
        let is_reviewer = record.kind == "reviewer";

        match (entry.stop.clone(), outcome) {
            (Some(StopReason::UserCancel), _) => {
                record.status = RunState::Cancelled;
                record.error = Some("cancelled by an operator".into());
                let p = PausedRecord {
                    identifier: id.clone(),
                    reason: "user_cancelled".into(),
                    paused_at: Utc::now(),
                    host: Some(host.clone()),
                    session_id: Some(record.session_id.clone()),
                    agent_ref: record.agent_ref.clone(),
                    backend: Some(record.backend.clone()),
                };
                let _ = self.store.with(|s| s.set_paused(&p));
                self.paused.insert(id.clone(), p);
            }
            (Some(StopReason::Terminate), _) => {
                record.status = RunState::Cancelled;
                record.error = Some("terminated by an operator".into());
                self.release(&id);
                self.ensure_active(&id);
            }
            (Some(StopReason::Terminal(state)), _) => {
                record.status = RunState::Cancelled;
                record.error = Some(format!("the issue moved to {state}"));
                self.release(&id);
            }
            (Some(StopReason::LeftActive(state)), _) => {
                record.status = RunState::Cancelled;
                record.error = Some(format!("the issue left the active states ({state})"));
                self.release(&id);
            }
            (Some(StopReason::Stalled), _) => {
                record.status = RunState::Stalled;
                record.error = Some("no progress within stall_timeout_ms".into());
                self.schedule_after_failure(&id, attempt, "the agent stalled".into(), None, Some(host.clone()));
            }
            (Some(StopReason::HostLost), _) => {
                record.status = RunState::Lost;
                record.error = Some(format!(
                    "host {host} was unreachable for longer than ssh.host_lost_after_ms"
                ));
                self.issue_hosts.remove(&id);
                let _ = self.store.with(|s| s.remove_issue_host(&id));
                self.schedule_retry_now(
                    &id,
                    attempt + 1,
                    format!("host {host} was lost; new attempt on another host"),
                );
            }
            (Some(StopReason::HostRemoved), _) => {
                record.status = RunState::Cancelled;
                record.error = Some(format!("host {host} was removed from the pool"));
                self.issue_hosts.remove(&id);
                let _ = self.store.with(|s| s.remove_issue_host(&id));
                self.schedule_retry_now(
                    &id,
                    attempt + 1,
                    format!("host {host} was removed; new attempt on another host"),
                );
            }
            (Some(StopReason::Clearing), _) => {
                record.status = RunState::Cancelled;
                record.error = Some("workspaces were cleared".into());
                self.release(&id);
            }
            (None, RunOutcome::Succeeded { .. }) => {
                record.status = RunState::Succeeded;
                self.release(&id);
                if let Some(url) = record.pr_url.clone() {
                    self.open_prs.insert(id.clone(), url.clone());
                    let _ = self.store.with(|s| s.set_open_pr(&id, Some(&url)));
                }
                if !is_reviewer {
                    if let Some(cs) = self.config().tracker.completion_state.clone() {
                        self.write_state(&id, &cs, true);
                    }
                    if let Some(branch) = record.branch.clone() {
                        self.write_branch(&id, &branch);
                    }
                    if self.config().agent.auto_review && self.config().agent.reviewer_profile.is_some() {
                        let issue = entry.issue.clone();
                        self.note(&id, LogLevel::Info, "Dispatching the reviewer (auto_review)");
                        self.dispatch(issue, &host, RunKind::Reviewer);
                    } else if self.config().workspace.auto_clear {
                        self.remove_workspace(&id, &host);
                    }
                }
            }
            (None, RunOutcome::InputRequired { question, .. }) => {
                record.status = RunState::InputRequired;
                let input = InputRecord {
                    identifier: id.clone(),
                    run_id: run_id.to_string(),
                    session_id: record.session_id.clone(),
                    host: host.clone(),
                    context: question.clone(),
                    queued_at: Utc::now(),
                    backend: Some(record.backend.clone()),
                    profile: record.profile.clone(),
                    attempt,
                    reply: None,
                    question_posted: false,
                };
                let _ = self.store.with(|s| s.set_input(&input));
                self.inputs.insert(id.clone(), input);
                self.retries.remove(&id);
                let _ = self.store.with(|s| s.remove_retry(&id));
                if !self.config().agent.inline_input {
                    let body = format!(
                        "**The agent needs your input** (reply in a comment to continue):\n\n{question}\n\n<!-- itervox:question:{} -->",
                        record.session_id
                    );
                    let key = format!(
                        "question:{}:{}",
                        crate::tracker::outbox::key_part(&record.session_id),
                        crate::tracker::outbox::key_part(&record.run_id)
                    );
                    self.write_comment(&id, &key, body);
                }
            }
            (
                None,
                RunOutcome::Failed {
                    error,
                    rate_limit_reset,
                    ..
                },
            ) => {
                record.status = RunState::Failed;
                record.error = Some(error.clone());
                if !is_reviewer {
                    self.schedule_after_failure(&id, attempt, error, rate_limit_reset, Some(host.clone()));
                }
            }
            (None, RunOutcome::Stopped) => {
                record.status = RunState::Cancelled;
                record.error = Some("the session was stopped on its host".into());
                if !is_reviewer {
                    self.schedule_after_failure(
                        &id,
                        attempt,
                        "the session was stopped on its host".into(),
                        None,
                        Some(host.clone()),
                    );
                }
            }
        }
        if let Err(e) = self.store.with(|s| s.save_run(&record)) {
            tracing::error!(error = %e, "Could not save the finished run");
        }
        self.totals = self.store.with(|s| s.totals()).unwrap_or(self.totals);
        if record.status == RunState::Failed {
            self.metrics
                .run_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.note(
            &id,
            if record.status == RunState::Failed {
                LogLevel::Warn
            } else {
                LogLevel::Info
            },
            format!(
                "Run finished: {}{}",
                record.status.as_str(),
                record.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
            ),
        );
        self.push_history(&record);
        self.dispatch_pass();
    }

    pub(super) fn push_history(&mut self, record: &RunRecord) {
        self.history.push_front(snapshot::history_row(record));
        self.history.truncate(HISTORY_ROWS);
        self.dirty = true;
    }

    /// Forgets the issue's retry bookkeeping: it is free to be dispatched again by the tracker's state.
    pub(super) fn release(&mut self, id: &str) {
        self.retries.remove(id);
        let _ = self.store.with(|s| s.remove_retry(id));
    }

    /// After terminate: make sure the issue is in an active state again.
    pub(super) fn ensure_active(&mut self, id: &str) {
        let cfg = self.config().tracker.clone();
        let state = self.issues.get(id).map(|i| i.state.clone());
        if let Some(state) = state
            && !cfg.is_active(&state)
            && let Some(first) = cfg.active_states.first().cloned()
        {
            self.write_state(id, &first, false);
        }
    }

    pub(super) fn schedule_retry_now(&mut self, id: &str, next_attempt: u32, reason: String) {
        let r = RetryRecord {
            identifier: id.to_string(),
            attempt: next_attempt,
            due_at: Utc::now(),
            error: Some(reason.clone()),
            prefer_host: None,
        };
        let _ = self.store.with(|s| s.set_retry(&r));
        self.retries.insert(id.to_string(), r);
        self.note(id, LogLevel::Warn, reason);
    }

    pub(super) fn schedule_after_failure(
        &mut self,
        id: &str,
        attempt: u32,
        error: String,
        rate_limit_reset: Option<DateTime<Utc>>,
        prefer_host: Option<String>,
    ) {
        let cfg = &self.config().agent;
        let decision = decide::after_failure(
            attempt,
            cfg.max_retries,
            Duration::from_millis(cfg.max_retry_backoff_ms),
            rate_limit_reset,
            self.config().tracker.failed_state.as_deref(),
            Utc::now(),
        );
        match decision {
            AfterFailure::Retry { next_attempt, due_at } => {
                let r = RetryRecord {
                    identifier: id.to_string(),
                    attempt: next_attempt,
                    due_at,
                    error: Some(error.clone()),
                    prefer_host,
                };
                let _ = self.store.with(|s| s.set_retry(&r));
                self.retries.insert(id.to_string(), r);
                self.note(
                    id,
                    LogLevel::Warn,
                    format!(
                        "Attempt {attempt} failed: {error}. Retry {next_attempt} at {}",
                        rfc3339(&due_at)
                    ),
                );
            }
            AfterFailure::Exhausted { failed_state } => {
                self.retries.remove(id);
                let _ = self.store.with(|s| s.remove_retry(id));
                match failed_state {
                    Some(state) => {
                        self.note(
                            id,
                            LogLevel::Error,
                            format!("Attempt {attempt} failed and no retries are left; moving to {state}"),
                        );
                        self.write_state(id, &state, true);
                    }
                    None => {
                        self.note(
                            id,
                            LogLevel::Error,
                            format!("Attempt {attempt} failed and no retries are left; the issue is paused"),
                        );
                        let p = PausedRecord {
                            identifier: id.to_string(),
                            reason: "retries_exhausted".into(),
                            paused_at: Utc::now(),
                            host: None,
                            session_id: None,
                            agent_ref: None,
                            backend: None,
                        };
                        let _ = self.store.with(|s| s.set_paused(&p));
                        self.paused.insert(id.to_string(), p);
                    }
                }
            }
        }
    }
}
