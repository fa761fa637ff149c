//! Dispatch: which eligible issues start now and where, building each run's spec, resuming answered or paused sessions, and re-attaching after a restart.

use super::*;

impl Actor {
    pub(super) fn dispatch_pass(&mut self) {
        self.dirty = true;
        if self.draining || self.clearing != Clearing::Idle {
            return;
        }
        // Answered questions go first: they resume an existing session.
        let answered: Vec<String> = self
            .inputs
            .values()
            .filter(|i| i.reply.is_some() && !self.by_issue.contains_key(&i.identifier))
            .map(|i| i.identifier.clone())
            .collect();
        let mut waiting_for_host = Vec::new();
        for id in answered {
            if (self.by_issue.len() as u32) >= self.config().agent.max_concurrent_agents {
                break;
            }
            if !self.dispatch_reply(&id) {
                waiting_for_host.push(id);
            }
        }

        let tracker_cfg = self.config().tracker.clone();
        let mut candidates: Vec<Issue> = self.issues.values().cloned().collect();
        candidates.sort_by(decide::dispatch_order);
        let now_utc = Utc::now();
        let mut reasons = BTreeMap::new();
        let mut host_exhausted = false;
        for issue in candidates {
            let id = issue.identifier.clone();
            let verdict = {
                let view = self.eligibility_view(&tracker_cfg, now_utc);
                decide::eligibility(&issue, &view)
            };
            let verdict = match verdict {
                Ok(()) if self.dry_run => Err(Ineligible::DryRun),
                Ok(()) if host_exhausted => Err(Ineligible::NoHostAvailable),
                v => v,
            };
            match verdict {
                Ok(()) => {
                    let prefer = self
                        .resume_sessions
                        .get(&id)
                        .and_then(|p| p.host.clone())
                        .or_else(|| self.retries.get(&id).and_then(|r| r.prefer_host.clone()))
                        .or_else(|| self.issue_hosts.get(&id).cloned());
                    let views = self.host_views();
                    match choose_host(
                        &views,
                        self.config().agent.dispatch_strategy,
                        &mut self.rr_cursor,
                        prefer.as_deref(),
                    ) {
                        Some(i) => {
                            let host = views[i].name.clone();
                            self.dispatch(issue, &host, RunKind::Worker);
                        }
                        None => {
                            host_exhausted = true;
                            reasons.insert(id, Ineligible::NoHostAvailable.reason());
                        }
                    }
                }
                Err(Ineligible::DryRun) => {
                    if self.reasons.get(&id).is_none_or(|r| r != "dry_run") {
                        tracing::info!(issue = %id, "Dry run: would dispatch");
                        self.note(&id, LogLevel::Info, "Dry run: this issue would be dispatched now");
                    }
                    reasons.insert(id, Ineligible::DryRun.reason());
                }
                Err(Ineligible::OpenPr) => {
                    // The open-PR guard pauses the issue (visible in `paused`, survives a restart)
                    // until an operator re-analyzes it.
                    self.pause_for_open_pr(&id);
                }
                Err(r) => {
                    reasons.insert(id, r.reason());
                }
            }
        }
        // An answered question whose session's host is down or full says so (over `input_required`).
        for id in waiting_for_host {
            reasons.insert(id, "waiting_for_host".into());
        }
        self.reasons = reasons;
    }

    /// Pauses an otherwise eligible issue whose earlier run opened a pull request (reason `open_pr`).
    fn pause_for_open_pr(&mut self, id: &str) {
        let p = PausedRecord {
            identifier: id.to_string(),
            reason: Ineligible::OpenPr.reason(),
            paused_at: Utc::now(),
            host: None,
            session_id: None,
            agent_ref: None,
            backend: None,
        };
        if let Err(e) = self.store.with(|s| s.set_paused(&p)) {
            tracing::error!(issue = %id, error = %e, "Could not record the open-PR pause");
            return;
        }
        self.paused.insert(id.to_string(), p);
        let url = self.open_prs.get(id).cloned().unwrap_or_default();
        self.note(
            id,
            LogLevel::Warn,
            format!("Paused: pull request {url} is still open; POST /issues/{id}/reanalyze to work on it again"),
        );
    }

    pub(super) fn eligibility_view<'a>(
        &'a self,
        tracker: &'a crate::config::TrackerConfig,
        now: DateTime<Utc>,
    ) -> EligibilityView<'a> {
        let mut running_by_state: BTreeMap<String, u32> = BTreeMap::new();
        for r in self.runs.values() {
            if let Some(s) = &r.record.issue_state {
                *running_by_state.entry(s.to_lowercase()).or_default() += 1;
            }
        }
        EligibilityView {
            tracker: Some(tracker),
            running: self.by_issue.keys().map(String::as_str).collect(),
            paused: self.paused.keys().map(String::as_str).collect(),
            input_required: self.inputs.keys().map(String::as_str).collect(),
            retry_waiting: self
                .retries
                .values()
                .filter(|r| r.due_at > now)
                .map(|r| r.identifier.as_str())
                .collect(),
            open_pr: self.open_prs.keys().map(String::as_str).collect(),
            forced: self.forced.iter().map(String::as_str).collect(),
            pending_write: self.pending_moves.keys().map(String::as_str).collect(),
            known_states: self
                .issues
                .values()
                .map(|i| (i.identifier.as_str(), i.state.as_str()))
                .collect(),
            max_concurrent: self.config().agent.max_concurrent_agents,
            running_count: self.runs.len() as u32,
            per_state_caps: self.config().agent.max_concurrent_agents_by_state.clone(),
            running_by_state,
        }
    }

    pub(super) fn agent_for(&self, identifier: &str, kind: RunKind) -> AgentChoice {
        let o = self.overrides.get(identifier);
        let profile = match kind {
            RunKind::Reviewer => self.config().agent.reviewer_profile.clone(),
            RunKind::Worker => o.and_then(|o| o.profile.clone()),
        };
        let backend = o
            .and_then(|o| o.backend.as_deref())
            .and_then(parse_backend)
            .filter(|_| kind == RunKind::Worker);
        prompt::choose_agent(self.config(), profile.as_deref(), backend)
    }

    pub(super) fn spec_base(
        &self,
        identifier: &str,
        run_id: &str,
        session_id: &str,
        link: HostLink,
        mode: RunMode,
        choice: &AgentChoice,
        attempt: u32,
        issue: &Issue,
    ) -> RunSpec {
        let cfg = self.config();
        let remote = link.name() != LOCAL_HOST;
        let mut env = BTreeMap::new();
        env.insert("ITERVOX_ATTEMPT".to_string(), attempt.to_string());
        env.insert("ITERVOX_ISSUE_IDENTIFIER".to_string(), identifier.to_string());
        RunSpec {
            run_id: run_id.to_string(),
            identifier: identifier.to_string(),
            session_id: session_id.to_string(),
            link,
            mode,
            backend: choice.backend,
            command: choice.command.clone(),
            env,
            permission_mode: choice.permission_mode,
            repo: cfg.workspace.repo.clone(),
            base_branch: cfg.workspace.base_branch.clone(),
            branch: issue
                .branch_name
                .clone()
                .filter(|b| !matches!(b.as_str(), "main" | "master" | "develop" | "HEAD" | ""))
                .unwrap_or_else(|| format!("itervox/{identifier}")),
            hooks: Hooks {
                after_create: cfg.hooks.after_create.clone(),
                before_run: cfg.hooks.before_run.clone(),
                after_run: cfg.hooks.after_run.clone(),
                before_remove: cfg.hooks.before_remove.clone(),
                timeout_ms: cfg.hooks.timeout_ms,
            },
            max_turns: cfg.agent.max_turns.max(1),
            turn_timeout_ms: cfg.agent.turn_timeout_ms,
            read_timeout_ms: cfg.agent.read_timeout_ms,
            // Only remote sessions carry a lease: the local host cannot be cut off from its controller,
            // so its sessions are never declared lost and must outlive a controller restart of any length.
            lease_ms: Some(cfg.ssh.host_lost_after_ms).filter(|&ms| ms > 0 && remote),
            continuation_prompt: prompt::continuation_prompt(issue),
            active_states: cfg.tracker.active_states.clone(),
            carried: Totals::default(),
            tracker: self.tracker.clone(),
            hub: self.hub.clone(),
            store: self.store.clone(),
            events: self.cmd_tx.clone(),
            cancel: self.cancel.child_token(),
            cancel_grace: self.cancel_grace,
        }
    }

    /// Starts a run of `issue` on `host`.
    pub(super) fn dispatch(&mut self, issue: Issue, host: &str, kind: RunKind) {
        let id = issue.identifier.clone();
        let Some(link) = self.host(host).map(|h| h.link.clone()) else {
            return;
        };
        let attempt = self.retries.get(&id).map(|r| r.attempt).unwrap_or(1);
        let choice = self.agent_for(&id, kind);
        let resume = if kind == RunKind::Worker {
            self.resume_sessions.remove(&id)
        } else {
            None
        };
        let run_id = uuid::Uuid::new_v4().to_string();

        // Resume the paused agent session on its host when that is where we are going.
        let (mode, session_id, resumed) =
            match resume {
                Some(p) if p.host.as_deref() == Some(host) && p.session_id.is_some() => {
                    let session = p.session_id.clone().unwrap_or_default();
                    let from = self.store.with(|s| s.session_cursor(&session)).unwrap_or(0) + 1;
                    (
                        RunMode::Resume {
                            message: "You were paused by an operator and are now resumed. Continue the task.".into(),
                            from_seq: from,
                        },
                        session,
                        true,
                    )
                }
                _ => {
                    let rendered = match kind {
                    RunKind::Worker => prompt::render_prompt(&self.workflow, &choice, &issue, attempt),
                    RunKind::Reviewer => prompt::render_prompt(&self.workflow, &choice, &issue, attempt).map(|p| {
                        format!(
                            "{p}\n\nYou are reviewing the work on branch itervox/{id}{}. Review the changes, report \
                             problems precisely, and do not push new commits.",
                            self.open_prs.get(&id).map(|u| format!(" (pull request {u})")).unwrap_or_default()
                        )
                    }),
                };
                    match rendered {
                        Ok(prompt) => (RunMode::Fresh { prompt }, new_session_id(&id), false),
                        Err(e) => {
                            let msg = format!("The prompt could not be rendered: {e}");
                            self.note(&id, LogLevel::Error, &msg);
                            self.schedule_after_failure(&id, attempt, msg, None, Some(host.to_string()));
                            return;
                        }
                    }
                }
            };
        self.retries.remove(&id);
        let _ = self.store.with(|s| s.remove_retry(&id));
        self.forced.remove(&id);

        let now = Utc::now();
        let record = RunRecord {
            run_id: run_id.clone(),
            identifier: id.clone(),
            title: Some(issue.title.clone()),
            attempt,
            kind: if kind == RunKind::Reviewer {
                "reviewer".into()
            } else {
                "worker".into()
            },
            host: host.to_string(),
            session_id: session_id.clone(),
            workspace: None,
            backend: choice.backend.as_str().to_string(),
            profile: choice.profile.clone(),
            status: RunState::Running,
            started_at: now,
            finished_at: None,
            turn_count: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: None,
            error: None,
            last_seq: 0,
            agent_ref: None,
            pr_url: None,
            branch: None,
            issue_state: Some(issue.state.clone()),
            resumed,
        };
        if let Err(e) = self.store.with(|s| {
            s.insert_run(&record)?;
            s.set_issue_host(&id, host)
        }) {
            tracing::error!(error = %e, "Could not record the run; not dispatching");
            return;
        }
        self.issue_hosts.insert(id.clone(), host.to_string());
        let spec = self.spec_base(&id, &run_id, &session_id, link, mode, &choice, attempt, &issue);
        self.note(
            &id,
            LogLevel::Info,
            format!(
                "Dispatched {}attempt {attempt} to {host} ({}{}, session {session_id})",
                if kind == RunKind::Reviewer { "reviewer " } else { "" },
                choice.backend.as_str(),
                choice
                    .profile
                    .as_ref()
                    .map(|p| format!(", profile {p}"))
                    .unwrap_or_default()
            ),
        );
        // Move the issue to the working state (not for reviewers, and only when it is elsewhere).
        if kind == RunKind::Worker
            && let Some(ws) = self.config().tracker.working_state.clone()
            && !issue.state.eq_ignore_ascii_case(&ws)
        {
            self.write_state(&id, &ws, false);
        }
        self.metrics
            .dispatches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.launch(record, issue, spec);
        self.dirty = true;
    }

    /// Resumes the agent session of an answered question. Returns false when it waits for a host: the one
    /// that holds the session (down or full), or any host when that one is gone.
    pub(super) fn dispatch_reply(&mut self, id: &str) -> bool {
        let Some(input) = self.inputs.get(id).cloned() else {
            return true;
        };
        let Some(reply_text) = input.reply.clone() else {
            return true;
        };
        // The session's host must be up and below its per-host cap, like any other placement.
        let view = self.host_views().into_iter().find(|v| v.name == input.host);
        let host_ok = view.as_ref().is_some_and(|v| v.accepts_work());
        let host_exists = view.is_some();
        if !host_ok {
            if host_exists {
                // Wait for the host that holds the session to be up with a free slot.
                return false;
            }
            // The host is gone: start over elsewhere with the question and answer in the prompt.
            let Some(issue) = self.issues.get(id).cloned() else {
                return true;
            };
            let choice = self.agent_for(id, RunKind::Worker);
            let views = self.host_views();
            let Some(i) = choose_host(&views, self.config().agent.dispatch_strategy, &mut self.rr_cursor, None) else {
                return false;
            };
            let host = views[i].name.clone();
            let prompt = match prompt::render_with_reply(
                &self.workflow,
                &choice,
                &issue,
                input.attempt,
                &input.context,
                &reply_text,
            ) {
                Ok(p) => p,
                Err(e) => {
                    self.note(id, LogLevel::Error, format!("The prompt could not be rendered: {e}"));
                    return true;
                }
            };
            self.inputs.remove(id);
            let _ = self.store.with(|s| s.remove_input(id));
            self.dispatch_with_mode(
                issue,
                &host,
                input.attempt,
                RunMode::Fresh { prompt },
                new_session_id(id),
                false,
            );
            return true;
        }
        let Some(issue) = self.issues.get(id).cloned().or_else(|| {
            Some(Issue {
                id: id.to_string(),
                identifier: id.to_string(),
                title: id.to_string(),
                state: self.config().tracker.working_state.clone().unwrap_or_default(),
                ..Issue::default()
            })
        }) else {
            return true;
        };
        self.inputs.remove(id);
        let _ = self.store.with(|s| s.remove_input(id));
        let from = self.store.with(|s| s.session_cursor(&input.session_id)).unwrap_or(0) + 1;
        let host = input.host.clone();
        self.dispatch_with_mode(
            issue,
            &host,
            input.attempt,
            RunMode::Resume {
                message: prompt::reply_prompt(&reply_text),
                from_seq: from,
            },
            input.session_id.clone(),
            true,
        );
        true
    }

    pub(super) fn dispatch_with_mode(
        &mut self,
        issue: Issue,
        host: &str,
        attempt: u32,
        mode: RunMode,
        session_id: String,
        resumed: bool,
    ) {
        let id = issue.identifier.clone();
        let Some(link) = self.host(host).map(|h| h.link.clone()) else {
            return;
        };
        let choice = self.agent_for(&id, RunKind::Worker);
        let run_id = uuid::Uuid::new_v4().to_string();
        let record = RunRecord {
            run_id: run_id.clone(),
            identifier: id.clone(),
            title: Some(issue.title.clone()),
            attempt,
            kind: "worker".into(),
            host: host.to_string(),
            session_id: session_id.clone(),
            workspace: None,
            backend: choice.backend.as_str().to_string(),
            profile: choice.profile.clone(),
            status: RunState::Running,
            started_at: Utc::now(),
            finished_at: None,
            turn_count: 0,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: None,
            error: None,
            last_seq: 0,
            agent_ref: None,
            pr_url: None,
            branch: None,
            issue_state: Some(issue.state.clone()),
            resumed,
        };
        if let Err(e) = self.store.with(|s| s.insert_run(&record)) {
            tracing::error!(error = %e, "Could not record the run; not dispatching");
            return;
        }
        let spec = self.spec_base(&id, &run_id, &session_id, link, mode, &choice, attempt, &issue);
        self.note(
            &id,
            LogLevel::Info,
            format!("Resuming session {session_id} on {host} with the human's answer"),
        );
        self.metrics
            .dispatches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.launch(record, issue, spec);
        self.dirty = true;
    }

    /// Re-attaches to the runs that were running when the controller stopped.
    pub(super) fn reattach_runs(&mut self) {
        let active = match self.store.with(|s| s.active_runs()) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "Could not load running sessions from the state database");
                return;
            }
        };
        for record in active {
            let id = record.identifier.clone();
            let logs_seq = self.store.with(|s| s.max_log_seq(&record.session_id)).unwrap_or(0);
            let Some(link) = self.host(&record.host).map(|h| h.link.clone()) else {
                // Its host is no longer in the pool: the session is lost; try again elsewhere.
                let mut r = record.clone();
                r.status = RunState::Lost;
                r.finished_at = Some(Utc::now());
                r.error = Some(format!("host {} is no longer configured", record.host));
                let _ = self.store.with(|s| {
                    s.save_run(&r)?;
                    s.add_stale_session(&record.host, &record.session_id)
                });
                self.push_history(&r);
                self.schedule_retry_now(
                    &id,
                    record.attempt + 1,
                    "its host was removed while the controller was down".into(),
                );
                continue;
            };
            tracing::info!(issue = %id, host = %record.host, session = %record.session_id, "Re-attaching to a running session");
            let issue = Issue {
                id: id.clone(),
                identifier: id.clone(),
                title: record.title.clone().unwrap_or_default(),
                state: record.issue_state.clone().unwrap_or_default(),
                ..Issue::default()
            };
            let choice = AgentChoice {
                command: String::new(),
                backend: parse_backend(&record.backend).unwrap_or(Backend::Claude),
                profile: record.profile.clone(),
                permission_mode: Default::default(),
                prompt_override: None,
            };
            let from = record.last_seq.min(logs_seq) + 1;
            let mut spec = self.spec_base(
                &id,
                &record.run_id,
                &record.session_id,
                link,
                RunMode::Reattach {
                    from_seq: from,
                    logs_seq,
                },
                &choice,
                record.attempt,
                &issue,
            );
            spec.carried = Totals {
                turn_count: record.turn_count,
                input_tokens: record.input_tokens,
                output_tokens: record.output_tokens,
                cost_usd: record.cost_usd,
                agent_ref: record.agent_ref.clone(),
                last_seq: record.last_seq,
            };
            self.launch(record, issue, spec);
        }
    }

    /// Registers a run as the issue's current one and starts its task.
    fn launch(&mut self, record: RunRecord, issue: Issue, spec: run::RunSpec) {
        let cancel = spec.cancel.clone();
        self.by_issue.insert(record.identifier.clone(), record.run_id.clone());
        self.runs.insert(
            record.run_id.clone(),
            RunEntry {
                record,
                issue,
                cancel,
                stop: None,
                last_progress: Instant::now(),
                last_event: None,
                subagents: 0,
            },
        );
        self.tasks.spawn(run::execute(spec, self.cancel.clone()));
    }
}
