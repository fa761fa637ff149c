//! Builds the `StateSnapshot` the API serves from the actor's state, and the `TrackerIssue` enrichment.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use itervox_protocol::api::{
    ConfigInvalid, Counts, HistoryRow, HostRow, InputRequiredRow, ModelOption, OrchestratorState, ProfileDef,
    RateLimits, RetryRow, RunKind, RunStatus, RunningRow, StateSnapshot, Totals, TrackerErrorInfo,
};

use crate::config::Config;
use crate::store::{RunRecord, RunState};

pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The configuration-derived part of the snapshot.
pub fn config_fields(s: &mut StateSnapshot, config: &Config) {
    let t = &config.tracker;
    let a = &config.agent;
    s.max_concurrent_agents = a.max_concurrent_agents;
    s.max_retries = a.max_retries;
    s.max_switches_per_issue_per_window = 0;
    s.switch_window_hours = 6;
    s.agent_mode = Some(a.agent_mode.as_str().to_string());
    s.available_profiles = a.profiles.keys().cloned().collect();
    s.profile_defs = a
        .profiles
        .iter()
        .map(|(name, p)| {
            (
                name.clone(),
                ProfileDef {
                    command: p.command.clone(),
                    prompt: p.prompt.clone(),
                    backend: p.backend.map(|b| b.as_str().to_string()),
                    enabled: Some(p.enabled),
                    permission_mode: p.permission_mode.map(|m| {
                        match m {
                            itervox_protocol::worker::PermissionMode::Bypass => "bypass",
                            itervox_protocol::worker::PermissionMode::Sandbox => "sandbox",
                        }
                        .to_string()
                    }),
                },
            )
        })
        .collect();
    s.available_models = a
        .available_models
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.iter()
                    .map(|m| ModelOption {
                        id: m.id.clone(),
                        label: m.label.clone(),
                    })
                    .collect(),
            )
        })
        .collect();
    s.reviewer_profile = a.reviewer_profile.clone();
    s.auto_review = Some(a.auto_review);
    s.tracker_kind = Some(t.kind.as_str().to_string());
    s.active_states = t.active_states.clone();
    s.terminal_states = t.terminal_states.clone();
    s.backlog_states = t.backlog_states.clone();
    s.completion_state = t.completion_state.clone();
    s.working_state = t.working_state.clone();
    s.failed_state = t.failed_state.clone();
    s.dispatch_strategy = Some(a.dispatch_strategy.as_str().to_string());
    s.auto_clear_workspace = Some(config.workspace.auto_clear);
    s.inline_input = Some(a.inline_input);
    s.poll_interval_ms = Some(config.polling.interval_ms);
    s.active_project_filter = t.project_filter.clone();
}

pub fn status_of(state: RunState) -> Option<RunStatus> {
    Some(match state {
        RunState::Running => return None,
        RunState::Succeeded => RunStatus::Succeeded,
        RunState::Failed => RunStatus::Failed,
        RunState::Cancelled => RunStatus::Cancelled,
        RunState::Stalled => RunStatus::Stalled,
        RunState::InputRequired => RunStatus::InputRequired,
        RunState::Lost => RunStatus::Lost,
    })
}

pub fn kind_of(kind: &str) -> RunKind {
    if kind == "reviewer" {
        RunKind::Reviewer
    } else {
        RunKind::Worker
    }
}

/// A history row from a finished run record.
pub fn history_row(r: &RunRecord) -> HistoryRow {
    let finished = r.finished_at.unwrap_or(r.started_at);
    HistoryRow {
        identifier: r.identifier.clone(),
        started_at: rfc3339(&r.started_at),
        finished_at: rfc3339(&finished),
        elapsed_ms: (finished - r.started_at).num_milliseconds().max(0) as u64,
        turn_count: r.turn_count,
        tokens: r.input_tokens + r.output_tokens,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        title: r.title.clone(),
        status: status_of(r.status),
        worker_host: Some(r.host.clone()),
        backend: Some(r.backend.clone()),
        session_id: Some(r.session_id.clone()),
        kind: Some(kind_of(&r.kind)),
        error: r.error.clone(),
        attempt: Some(r.attempt),
        profile: r.profile.clone(),
        cost_usd: r.cost_usd,
        pr_url: r.pr_url.clone(),
    }
}

/// Parts of the snapshot the actor fills from its own state.
#[derive(Debug, Default)]
pub struct Dynamic {
    pub running: Vec<RunningRow>,
    pub retrying: Vec<RetryRow>,
    pub paused: BTreeMap<String, String>,
    pub input_required: Vec<InputRequiredRow>,
    pub history: Vec<HistoryRow>,
    pub hosts: Vec<HostRow>,
    pub totals: Totals,
    pub rate_limits: Option<RateLimits>,
    pub last_tracker_error: Option<TrackerErrorInfo>,
    pub config_invalid: Option<ConfigInvalid>,
    pub draining: bool,
    pub dry_run: bool,
    pub demo_mode: bool,
}

pub fn build(config: &Config, d: Dynamic, now: &DateTime<Utc>) -> StateSnapshot {
    let mut s = StateSnapshot {
        generated_at: rfc3339(now),
        counts: Counts {
            running: d.running.len() as u32,
            retrying: d.retrying.len() as u32,
            paused: d.paused.len() as u32,
        },
        ..StateSnapshot::default()
    };
    config_fields(&mut s, config);
    s.running = d.running;
    s.retrying = d.retrying;
    s.paused = d.paused.keys().cloned().collect();
    s.pause_reasons = d.paused;
    s.input_required = d.input_required;
    s.history = d.history;
    s.ssh_hosts = d.hosts;
    s.totals = Some(d.totals);
    s.rate_limits = d.rate_limits;
    s.last_tracker_error = d.last_tracker_error;
    s.config_invalid = d.config_invalid;
    s.draining = d.draining.then_some(true);
    s.dry_run = d.dry_run.then_some(true);
    s.demo_mode = d.demo_mode.then_some(true);
    s
}

/// The orchestrator state shown for an issue.
pub fn orchestrator_state(running: bool, retrying: bool, paused: bool, input_required: bool) -> OrchestratorState {
    if running {
        OrchestratorState::Running
    } else if input_required {
        OrchestratorState::InputRequired
    } else if paused {
        OrchestratorState::Paused
    } else if retrying {
        OrchestratorState::Retrying
    } else {
        OrchestratorState::Idle
    }
}
