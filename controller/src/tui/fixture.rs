//! State frames, log entries and keys for the TUI's tests: a busy controller with an issue in every
//! pane, built from the wire types the API serves.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use itervox_protocol::api::{
    Counts, HostRow, HostStatus, InputRequiredRow, RetryRow, RunningRow, StateSnapshot, Totals,
};
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};

use super::app::{App, Event};

/// The time the fixture frame was generated.
pub fn t0() -> DateTime<Utc> {
    "2026-12-04T10:00:00Z".parse().unwrap()
}

pub fn running(id: &str, host: &str, backend: &str, turn: u32) -> RunningRow {
    RunningRow {
        identifier: id.into(),
        state: "In Progress".into(),
        turn_count: turn,
        tokens: 12_345,
        input_tokens: 10_000,
        output_tokens: 2_345,
        elapsed_ms: 242_000,
        started_at: "2026-12-04T09:55:58Z".into(),
        title: Some(format!("Title of {id}")),
        session_id: Some(format!("s-{id}")),
        worker_host: Some(host.into()),
        backend: Some(backend.into()),
        last_event: Some("action".into()),
        last_message: Some("cargo test --workspace".into()),
        ..RunningRow::default()
    }
}

/// A frame with two running issues, one retrying, one waiting for input, one paused, three hosts.
pub fn busy() -> StateSnapshot {
    StateSnapshot {
        generated_at: t0().to_rfc3339(),
        counts: Counts {
            running: 2,
            retrying: 1,
            paused: 1,
        },
        running: vec![
            running("ITX-1", "build-1", "claude", 3),
            running("ITX-5", "local", "codex", 7),
        ],
        retrying: vec![RetryRow {
            identifier: "ITX-2".into(),
            attempt: 2,
            due_at: "2026-12-04T10:00:42Z".into(),
            error: Some("agent exited with code 1".into()),
        }],
        paused: vec!["ITX-7".into()],
        pause_reasons: BTreeMap::from([("ITX-7".to_string(), "cancelled from the TUI".to_string())]),
        input_required: vec![InputRequiredRow {
            identifier: "ITX-3".into(),
            session_id: "s-3".into(),
            context: "Which license should the project use: MIT or Apache-2.0?".into(),
            queued_at: "2026-12-04T09:59:00Z".into(),
            backend: Some("claude".into()),
            ..InputRequiredRow::default()
        }],
        ssh_hosts: vec![
            HostRow {
                host: "local".into(),
                status: Some(HostStatus::Up),
                running: 1,
                capacity: 2,
                latency_ms: Some(0.4),
                ..HostRow::default()
            },
            HostRow {
                host: "build-1".into(),
                status: Some(HostStatus::Up),
                running: 1,
                capacity: 4,
                latency_ms: Some(12.0),
                ..HostRow::default()
            },
            HostRow {
                host: "build-2".into(),
                status: Some(HostStatus::Down),
                running: 0,
                capacity: 2,
                last_error: Some("connect: connection refused".into()),
                ..HostRow::default()
            },
        ],
        max_concurrent_agents: 4,
        max_retries: 5,
        totals: Some(Totals {
            input_tokens: 20_000,
            output_tokens: 4_690,
            cost_usd_estimated: None,
        }),
        ..StateSnapshot::default()
    }
}

/// An app that has received `busy()` at `t0()`, viewing in UTC.
pub fn app_with(snapshot: StateSnapshot) -> App {
    let mut app = App::new("http://127.0.0.1:8090/api/v1", FixedOffset::east_opt(0).unwrap(), t0());
    app.update(Event::Snapshot {
        snapshot: Box::new(snapshot),
        at: t0(),
    });
    app
}

pub fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

pub fn ch(c: char) -> Event {
    let mods = if c.is_ascii_uppercase() {
        KeyModifiers::SHIFT
    } else {
        KeyModifiers::NONE
    };
    Event::Key(KeyEvent::new(KeyCode::Char(c), mods))
}

pub fn ctrl(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

pub fn log_entry(seq: u64, kind: LogEventKind, message: &str) -> IssueLogEntry {
    IssueLogEntry {
        level: if kind == LogEventKind::Error {
            LogLevel::Error
        } else {
            LogLevel::Info
        },
        event: kind,
        message: message.into(),
        tool: (kind == LogEventKind::Action).then(|| "Bash".to_string()),
        time: format!("2026-12-04T10:00:{:02}Z", seq % 60),
        detail: None,
        session_id: Some("s-ITX-1".into()),
        seq: Some(seq),
    }
}
