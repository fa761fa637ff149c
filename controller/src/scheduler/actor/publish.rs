//! Publishing the state snapshot (and readiness) after changes.

use super::*;

impl Actor {
    pub(super) fn publish(&mut self, force: bool) {
        if !force && self.last_publish.elapsed() < PUBLISH_EVERY {
            return;
        }
        self.dirty = false;
        self.last_publish = Instant::now();
        self.version += 1;
        let now = Utc::now();
        let running: Vec<RunningRow> = self
            .runs
            .values()
            .map(|r| {
                let rec = &r.record;
                RunningRow {
                    identifier: rec.identifier.clone(),
                    state: r.issue.state.clone(),
                    turn_count: rec.turn_count,
                    tokens: rec.input_tokens + rec.output_tokens,
                    input_tokens: rec.input_tokens,
                    output_tokens: rec.output_tokens,
                    elapsed_ms: (now - rec.started_at).num_milliseconds().max(0) as u64,
                    started_at: rfc3339(&rec.started_at),
                    title: rec.title.clone(),
                    session_id: Some(rec.session_id.clone()),
                    worker_host: Some(rec.host.clone()),
                    backend: Some(rec.backend.clone()),
                    profile: rec.profile.clone(),
                    kind: Some(snapshot::kind_of(&rec.kind)),
                    last_event: r.last_event.as_ref().map(|e| e.0.clone()),
                    last_message: r.last_event.as_ref().map(|e| e.1.clone()),
                    last_event_at: r.last_event.as_ref().map(|e| rfc3339(&e.2)),
                    subagent_count: (r.subagents > 0).then_some(r.subagents),
                    attempt: Some(rec.attempt),
                    cost_usd: rec.cost_usd,
                }
            })
            .collect();
        let retrying = self
            .retries
            .values()
            .filter(|r| !self.by_issue.contains_key(&r.identifier))
            .map(|r| RetryRow {
                identifier: r.identifier.clone(),
                attempt: r.attempt,
                due_at: rfc3339(&r.due_at),
                error: r.error.clone(),
            })
            .collect();
        let input_required = self
            .inputs
            .values()
            .filter(|i| !self.by_issue.contains_key(&i.identifier))
            .map(|i| InputRequiredRow {
                identifier: i.identifier.clone(),
                session_id: i.session_id.clone(),
                context: i.context.clone(),
                queued_at: rfc3339(&i.queued_at),
                backend: i.backend.clone(),
                profile: i.profile.clone(),
                worker_host: Some(i.host.clone()),
            })
            .collect();
        let cap = self.config().agent.max_concurrent_agents_per_host;
        let hosts = self
            .hosts
            .iter()
            .map(|h| {
                let st = h.link.status();
                let status = if h.draining && st.state == HostStatus::Up {
                    HostStatus::Draining
                } else {
                    st.state
                };
                HostRow {
                    host: h.name.clone(),
                    description: h.description.clone(),
                    status: Some(status),
                    running: self.running_on(&h.name),
                    capacity: cap,
                    last_error: st.last_error.clone(),
                    latency_ms: st.latency_ms.map(|l| (l * 100.0).round() / 100.0),
                    load1: st.load1,
                    cpus: st.cpus,
                    worker_version: st.worker_version.clone(),
                }
            })
            .collect();
        let rate_limits = self.tracker.rate_budget().map(|b| RateLimits {
            requests_limit: b.limit,
            requests_remaining: b.remaining,
            requests_reset: b.reset_at.map(|t| rfc3339(&t)),
        });
        let dynamic = snapshot::Dynamic {
            running,
            retrying,
            paused: self.paused.iter().map(|(k, v)| (k.clone(), v.reason.clone())).collect(),
            input_required,
            history: self.history.iter().cloned().collect(),
            hosts,
            totals: itervox_protocol::api::Totals {
                input_tokens: self.totals.0,
                output_tokens: self.totals.1,
                cost_usd_estimated: self.totals.2,
            },
            rate_limits,
            last_tracker_error: self.last_tracker_error.clone(),
            config_invalid: self.config_invalid.clone(),
            draining: self.draining,
            dry_run: self.dry_run,
            demo_mode: self.demo_mode,
        };
        let snapshot = snapshot::build(self.config(), dynamic, &now);
        let json = Bytes::from(serde_json::to_vec(&snapshot).unwrap_or_default());
        let readiness = Readiness {
            ready: is_ready(self.polled_ok_once, self.consecutive_poll_failures, self.draining),
            last_poll_ok: self.last_poll_ok,
            draining: self.draining,
            config_invalid: self.config_invalid.is_some(),
            consecutive_poll_failures: self.consecutive_poll_failures,
        };
        let _ = self.snapshot_tx.send(Arc::new(SnapshotFrame {
            version: self.version,
            snapshot,
            json,
            readiness,
        }));
    }
}

/// Readiness: a poll has succeeded since the start, fewer than three polls in a row have failed since,
/// and the controller is not draining. One or two failed polls are a blip, not an outage.
fn is_ready(polled_ok_once: bool, consecutive_poll_failures: u32, draining: bool) -> bool {
    polled_ok_once && consecutive_poll_failures < 3 && !draining
}

#[cfg(test)]
mod tests {
    use super::is_ready;

    #[test]
    fn readiness_fails_after_three_failed_polls_in_a_row() {
        for (polled_ok_once, failures, draining, ready) in [
            (false, 0, false, false),
            (false, 1, false, false),
            (true, 0, false, true),
            (true, 1, false, true),
            (true, 2, false, true),
            (true, 3, false, false),
            (true, 9, false, false),
            (true, 0, true, false),
        ] {
            assert_eq!(
                is_ready(polled_ok_once, failures, draining),
                ready,
                "polled_ok_once={polled_ok_once} failures={failures} draining={draining}"
            );
        }
    }
}
