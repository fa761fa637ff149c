//! Tracker polling: fetching candidates and tracked issues off the actor, and reconciling runs, retries and replies with what came back.

use super::*;

impl Actor {
    pub(super) fn start_poll(&mut self, full: bool) {
        if self.poll_in_flight {
            self.poll_queued |= full;
            return;
        }
        self.poll_in_flight = true;
        self.metrics
            .tracker_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tracker = self.tracker.clone();
        let t = &self.config().tracker;
        let states: Vec<String> = t.active_states.iter().chain(t.backlog_states.iter()).cloned().collect();
        let now_utc = Utc::now();
        let mut tracked: BTreeSet<String> = self.by_issue.keys().cloned().collect();
        tracked.extend(self.inputs.keys().cloned());
        let due: BTreeSet<String> = self
            .retries
            .values()
            .filter(|r| r.due_at <= now_utc)
            .map(|r| r.identifier.clone())
            .collect();
        tracked.extend(due.iter().cloned());
        let comments_for: Vec<String> = if self.config().agent.inline_input {
            Vec::new()
        } else {
            self.inputs
                .values()
                .filter(|i| i.reply.is_none())
                .map(|i| i.identifier.clone())
                .collect()
        };
        let settled_moves: Vec<(String, String)> = self
            .pending_moves
            .iter()
            .filter(|(_, (_, key))| {
                !matches!(
                    self.outbox.status_of(key).ok().flatten().as_deref(),
                    Some("pending" | "failed")
                )
            })
            .map(|(id, (_, key))| (id.clone(), key.clone()))
            .collect();
        let tx = self.cmd_tx.clone();
        self.tasks.spawn(async move {
            let candidates = if full {
                tracker.fetch_candidates(&states).await
            } else {
                Ok(Vec::new())
            };
            let have: BTreeSet<String> = candidates
                .as_ref()
                .map(|c| c.iter().map(|i| i.identifier.clone()).collect())
                .unwrap_or_default();
            let ask: Vec<String> = tracked.into_iter().filter(|id| !have.contains(id)).collect();
            let tracked = if candidates.is_ok() || !full {
                tracker.fetch_by_identifiers(&ask).await
            } else {
                Err(TrackerError::Transport(
                    "skipped after the candidate fetch failed".into(),
                ))
            };
            let mut with_comments = Vec::new();
            for id in comments_for {
                if let Ok(Some(issue)) = tracker.fetch_issue(&id).await {
                    with_comments.push(issue);
                }
            }
            let _ = tx
                .send(Command::PollDone(PollResult {
                    candidates,
                    tracked,
                    tracked_asked: ask,
                    with_comments,
                    full,
                    settled_moves,
                }))
                .await;
        });
    }

    pub(super) fn record_tracker_error(&mut self, op: &str, e: &TrackerError) {
        self.consecutive_poll_failures += 1;
        let reset_at = match e {
            TrackerError::RateLimited { reset_at } => reset_at.map(|t| rfc3339(&t)),
            _ => None,
        };
        self.last_tracker_error = Some(TrackerErrorInfo {
            at: rfc3339(&Utc::now()),
            op: op.into(),
            kind: e.kind().into(),
            message: e.to_string(),
            reset_at,
            consecutive_failures: self.consecutive_poll_failures,
        });
        tracing::warn!(op, error = %e, failures = self.consecutive_poll_failures, "Tracker request failed");
    }

    pub(super) fn on_poll(&mut self, result: PollResult) {
        self.poll_in_flight = false;
        self.dirty = true;
        let tracker_cfg = self.config().tracker.clone();
        match result.candidates {
            Ok(candidates) => {
                if result.full {
                    self.consecutive_poll_failures = 0;
                    self.last_poll_ok = true;
                    self.polled_ok_once = true;
                    self.last_tracker_error = None;
                    self.issues = candidates.into_iter().map(|i| (i.identifier.clone(), i)).collect();
                }
            }
            Err(e) => {
                self.last_poll_ok = false;
                self.metrics
                    .tracker_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.record_tracker_error("poll", &e);
                if self.poll_queued {
                    self.poll_queued = false;
                    self.start_poll(true);
                }
                return;
            }
        }
        let tracked_ok = result.tracked.is_ok();
        match result.tracked {
            Ok(tracked) => {
                for i in tracked {
                    self.issues.insert(i.identifier.clone(), i);
                }
            }
            Err(e) => {
                self.record_tracker_error("refresh", &e);
            }
        }
        // Pending state moves: once the tracker shows them, stop overlaying.
        let shown: Vec<String> = self
            .pending_moves
            .iter()
            .filter(|(id, (state, _))| {
                self.issues
                    .get(*id)
                    .is_some_and(|i| i.state.eq_ignore_ascii_case(state))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in shown {
            self.pending_moves.remove(&id);
        }
        // Moves the tracker had taken before this poll began: what it fetched is the truth now, even when
        // the issue left the polled states (a finished issue) or a person moved it on since.
        if result.full {
            for (id, key) in &result.settled_moves {
                if self.pending_moves.get(id).is_some_and(|(_, k)| k == key) {
                    self.pending_moves.remove(id);
                }
            }
        }

        // Reconcile running issues with the tracker.
        let working = tracker_cfg.working_state.clone();
        let mut stops = Vec::new();
        for (run_id, r) in &self.runs {
            if r.stop.is_some() || r.record.kind == "reviewer" {
                continue;
            }
            let id = &r.record.identifier;
            match self.issues.get(id) {
                Some(issue) => {
                    let active = tracker_cfg.is_active(&issue.state)
                        || working.as_deref().is_some_and(|w| w.eq_ignore_ascii_case(&issue.state));
                    if tracker_cfg.is_terminal(&issue.state) {
                        stops.push((run_id.clone(), StopReason::Terminal(issue.state.clone())));
                    } else if !active {
                        stops.push((run_id.clone(), StopReason::LeftActive(issue.state.clone())));
                    }
                }
                None if tracked_ok && result.tracked_asked.contains(id) => {
                    stops.push((run_id.clone(), StopReason::LeftActive("deleted".into())));
                }
                None => {}
            }
        }
        for (run_id, reason) in stops {
            self.stop_run(&run_id, reason);
        }
        // Retries of issues that are gone or no longer active are dropped.
        let dropped: Vec<String> = self
            .retries
            .keys()
            .filter(|id| match self.issues.get(*id) {
                Some(i) => !tracker_cfg.is_active(&i.state),
                None => tracked_ok && result.tracked_asked.contains(id),
            })
            .cloned()
            .collect();
        for id in dropped {
            self.retries.remove(&id);
            let _ = self.store.with(|s| s.remove_retry(&id));
            self.note(
                &id,
                LogLevel::Info,
                "Retry dropped: the issue is no longer in an active state",
            );
        }
        // Human replies posted as tracker comments.
        for issue in result.with_comments {
            let Some(input) = self.inputs.get(&issue.identifier) else {
                continue;
            };
            let reply = issue.comments.iter().find(|c| {
                c.created_at.is_some_and(|t| t > input.queued_at)
                    && !c.body.contains("<!-- itervox:")
                    && !c.author.eq_ignore_ascii_case("itervox")
            });
            if let Some(c) = reply {
                let mut input = input.clone();
                input.reply = Some(c.body.clone());
                let _ = self.store.with(|s| s.set_input(&input));
                self.note(
                    &issue.identifier,
                    LogLevel::Info,
                    format!("Reply from {} found in the tracker", c.author),
                );
                self.inputs.insert(issue.identifier.clone(), input);
            }
        }
        self.dispatch_pass();
        if self.poll_queued {
            self.poll_queued = false;
            self.start_poll(true);
        }
    }
}
