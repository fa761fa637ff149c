//! Key handling and event folding, as tables: which keys in which state produce which API calls,
//! dialogs, selections and log follows.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use itervox_protocol::LogEventKind;
use serde_json::json;

use super::*;
use crate::tui::fixture::{app_with, busy, ch, ctrl, key, log_entry, t0};

fn call(r: ApiRequest) -> Vec<Action> {
    vec![Action::Call(r)]
}

/// Feeds `keys` to an app fresh from `busy()` and returns the actions of the last key.
fn after(keys: &[Event]) -> (App, Vec<Action>) {
    let mut app = app_with(busy());
    let mut last = Vec::new();
    for k in keys {
        last = app.update(k.clone());
    }
    (app, last)
}

#[test]
fn the_first_frame_selects_the_first_running_issue_and_follows_its_log() {
    let mut app = App::new("u", FixedOffset::east_opt(0).unwrap(), t0());
    let actions = app.update(Event::Snapshot {
        snapshot: Box::new(busy()),
        at: t0(),
    });
    assert_eq!(actions, vec![Action::FollowLog(Some("ITX-1".into()))]);
    assert_eq!(app.selected_issue(), Some("ITX-1"));
    assert_eq!(app.connection, Connection::Live);
}

#[test]
fn with_nothing_running_the_first_frame_starts_on_a_pane_with_issues() {
    let mut s = busy();
    s.running.clear();
    s.input_required.clear();
    let mut app = App::new("u", FixedOffset::east_opt(0).unwrap(), t0());
    let actions = app.update(Event::Snapshot {
        snapshot: Box::new(s.clone()),
        at: t0(),
    });
    assert_eq!(app.focus, Pane::Retrying);
    assert_eq!(actions, vec![Action::FollowLog(Some("ITX-2".into()))]);
    app.update(ch('1'));
    app.update(Event::Snapshot {
        snapshot: Box::new(s),
        at: t0(),
    });
    assert_eq!(
        app.focus,
        Pane::Running,
        "later frames leave the focus where the user put it"
    );
}

#[test]
fn key_table() {
    let id = |s: &str| s.to_string();
    let rows: Vec<(&str, Vec<Event>, Vec<Action>)> = vec![
        (
            "x on a selected running issue cancels it",
            vec![ch('x')],
            call(ApiRequest::Cancel {
                identifier: id("ITX-1"),
            }),
        ),
        (
            "x acts on the row moved to",
            vec![key(KeyCode::Down), ch('x')],
            call(ApiRequest::Cancel {
                identifier: id("ITX-5"),
            }),
        ),
        ("x on a paused issue does nothing", vec![ch('4'), ch('x')], vec![]),
        (
            "r on a selected paused issue resumes it",
            vec![ch('4'), ch('r')],
            call(ApiRequest::Resume {
                identifier: id("ITX-7"),
            }),
        ),
        ("r on a running issue does nothing", vec![ch('r')], vec![]),
        ("S only asks", vec![ch('S')], vec![]),
        (
            "S then y terminates",
            vec![ch('S'), ch('y')],
            call(ApiRequest::Terminate {
                identifier: id("ITX-1"),
            }),
        ),
        ("S then n keeps it", vec![ch('S'), ch('n')], vec![]),
        ("S then Esc keeps it", vec![ch('S'), key(KeyCode::Esc), ch('y')], vec![]),
        (
            "S on a paused issue terminates it too",
            vec![ch('4'), ch('S'), ch('Y')],
            call(ApiRequest::Terminate {
                identifier: id("ITX-7"),
            }),
        ),
        (
            "S on the hosts pane does nothing",
            vec![ch('5'), ch('S'), ch('y')],
            vec![],
        ),
        ("+ adds a worker", vec![ch('+')], call(ApiRequest::Workers { delta: 1 })),
        (
            "= adds a worker (unshifted +)",
            vec![ch('=')],
            call(ApiRequest::Workers { delta: 1 }),
        ),
        (
            "- removes a worker",
            vec![ch('-')],
            call(ApiRequest::Workers { delta: -1 }),
        ),
        ("R refreshes", vec![ch('R')], call(ApiRequest::Refresh)),
        ("q quits", vec![ch('q')], vec![Action::Quit]),
        ("ctrl-c quits", vec![ctrl('c')], vec![Action::Quit]),
        (
            "ctrl-c quits from the reply box",
            vec![ch('i'), ctrl('c')],
            vec![Action::Quit],
        ),
        ("q quits from help", vec![ch('?'), ch('q')], vec![Action::Quit]),
        ("q types into the reply box", vec![ch('i'), ch('q')], vec![]),
        (
            "i, typing and Enter replies to the waiting issue",
            vec![ch('i'), ch('M'), ch('I'), ch('T'), key(KeyCode::Enter)],
            call(ApiRequest::ProvideInput {
                identifier: id("ITX-3"),
                message: id("MIT"),
            }),
        ),
        (
            "Backspace edits the reply",
            vec![
                ch('i'),
                ch('M'),
                ch('X'),
                key(KeyCode::Backspace),
                ch('I'),
                ch('T'),
                key(KeyCode::Enter),
            ],
            call(ApiRequest::ProvideInput {
                identifier: id("ITX-3"),
                message: id("MIT"),
            }),
        ),
        (
            "an empty reply is not sent",
            vec![ch('i'), ch(' '), key(KeyCode::Enter)],
            vec![],
        ),
        (
            "Esc closes the reply box unsent",
            vec![ch('i'), ch('a'), key(KeyCode::Esc)],
            vec![],
        ),
        ("ctrl-x is not x", vec![ctrl('x')], vec![]),
    ];
    for (what, keys, expected) in rows {
        let (_, got) = after(&keys);
        assert_eq!(got, expected, "{what}");
    }
}

#[test]
fn key_releases_are_ignored() {
    let mut release = KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    let (_, got) = after(&[Event::Key(release)]);
    assert_eq!(got, vec![]);
}

#[test]
fn refused_keys_explain_themselves_in_the_status_line() {
    let (app, _) = after(&[ch('4'), ch('x')]);
    let st = app.status.unwrap();
    assert!(st.error);
    assert_eq!(st.text, "x cancels a running issue; ITX-7 is paused");
    let (app, _) = after(&[ch('5'), ch('x')]);
    assert!(app.status.unwrap().text.contains("select it first"));
}

#[test]
fn dialogs_open_and_close() {
    let (app, _) = after(&[ch('S')]);
    assert_eq!(
        app.mode,
        Mode::ConfirmTerminate {
            identifier: "ITX-1".into()
        }
    );
    let (app, _) = after(&[ch('?')]);
    assert_eq!(app.mode, Mode::Help);
    let (app, _) = after(&[ch('?'), key(KeyCode::Esc)]);
    assert_eq!(app.mode, Mode::Normal);
    let (app, _) = after(&[ch('i'), ch('o'), ch('k')]);
    assert_eq!(
        app.mode,
        Mode::Reply {
            identifier: "ITX-3".into(),
            question: "Which license should the project use: MIT or Apache-2.0?".into(),
            text: "ok".into(),
        }
    );
    assert_eq!(app.focus, Pane::InputRequired, "i moves to the issue it answers");
}

#[test]
fn i_without_a_waiting_issue_says_so() {
    let mut s = busy();
    s.input_required.clear();
    let mut app = app_with(s);
    assert_eq!(app.update(ch('i')), vec![]);
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.status.unwrap().text, "no issue is waiting for input");
}

#[test]
fn a_paste_goes_into_the_reply_on_one_line() {
    let (mut app, _) = after(&[ch('i')]);
    app.update(Event::Paste("Apache-2.0,\nplease\x1b[31m".into()));
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        call(ApiRequest::ProvideInput {
            identifier: "ITX-3".into(),
            message: "Apache-2.0, please [31m".into(),
        })
    );
}

#[test]
fn the_reply_box_closes_when_the_question_is_answered_elsewhere() {
    let (mut app, _) = after(&[ch('i'), ch('a')]);
    let mut s = busy();
    s.input_required.clear();
    app.update(Event::Snapshot {
        snapshot: Box::new(s),
        at: t0(),
    });
    assert_eq!(app.mode, Mode::Normal);
    assert!(app.status.unwrap().text.contains("no longer waits for input"));
}

#[test]
fn moving_between_rows_and_panes_follows_the_selected_issue() {
    let mut app = app_with(busy());
    assert_eq!(
        app.update(key(KeyCode::Down)),
        vec![Action::FollowLog(Some("ITX-5".into()))]
    );
    assert_eq!(app.update(key(KeyCode::Down)), vec![], "already on the last row");
    assert_eq!(
        app.update(key(KeyCode::Tab)),
        vec![Action::FollowLog(Some("ITX-3".into()))]
    );
    assert_eq!(app.focus, Pane::InputRequired);
    assert_eq!(app.update(ch('5')), vec![], "hosts are not issues: keep the log");
    assert_eq!(app.log.identifier.as_deref(), Some("ITX-3"));
    assert_eq!(
        app.update(key(KeyCode::Tab)),
        vec![Action::FollowLog(Some("ITX-5".into()))]
    );
    assert_eq!(app.focus, Pane::Running, "Tab wraps around");
    assert_eq!(app.update(key(KeyCode::BackTab)), vec![]);
    assert_eq!(app.focus, Pane::Hosts);
}

#[test]
fn the_selection_sticks_to_its_issue_across_frames() {
    let mut app = app_with(busy());
    app.update(key(KeyCode::Down));
    assert_eq!(app.selected_issue(), Some("ITX-5"));
    let mut s = busy();
    s.running.reverse();
    app.update(Event::Snapshot {
        snapshot: Box::new(s.clone()),
        at: t0(),
    });
    assert_eq!(app.selected_issue(), Some("ITX-5"), "reordered: same issue");
    s.running.retain(|r| r.identifier != "ITX-5");
    let actions = app.update(Event::Snapshot {
        snapshot: Box::new(s),
        at: t0(),
    });
    assert_eq!(app.selected_issue(), Some("ITX-1"), "gone: the nearest row");
    assert_eq!(actions, vec![], "the log of a finished run stays on screen");
    assert_eq!(app.log.identifier.as_deref(), Some("ITX-5"));
}

#[test]
fn disconnection_keeps_the_first_failure_time_and_freezes_clocks() {
    let mut app = app_with(busy());
    let later = t0() + chrono::Duration::seconds(5);
    app.update(Event::Tick(later));
    assert_eq!(app.since_frame_ms(), 5000);
    assert_eq!(app.due_in_ms("2026-12-04T10:00:42Z"), Some(37_000));
    app.update(Event::Disconnected {
        error: "cannot reach 127.0.0.1:8090: Connection refused".into(),
        retry_in: Duration::from_secs(2),
        at: later,
    });
    app.update(Event::Disconnected {
        error: "again".into(),
        retry_in: Duration::from_secs(4),
        at: later + chrono::Duration::seconds(2),
    });
    match &app.connection {
        Connection::Disconnected { since, retry_at, error } => {
            assert_eq!(*since, later);
            assert_eq!(*retry_at, later + chrono::Duration::seconds(6));
            assert_eq!(error, "again");
        }
        other => panic!("expected disconnected, got {other:?}"),
    }
    assert_eq!(app.since_frame_ms(), 0, "no guessing while disconnected");
    app.update(Event::Snapshot {
        snapshot: Box::new(busy()),
        at: later + chrono::Duration::seconds(8),
    });
    assert_eq!(app.connection, Connection::Live);
}

#[test]
fn log_entries_fill_the_followed_issue_only() {
    let mut app = app_with(busy());
    app.update(Event::LogConnected {
        identifier: "ITX-1".into(),
    });
    assert_eq!(app.log.state, LogState::Following);
    for seq in 1..=3 {
        app.update(Event::Log {
            identifier: "ITX-1".into(),
            entry: Box::new(log_entry(seq, LogEventKind::Text, "thinking")),
        });
    }
    app.update(Event::Log {
        identifier: "ITX-9".into(),
        entry: Box::new(log_entry(9, LogEventKind::Text, "stale stream")),
    });
    assert_eq!(app.log.entries.len(), 3);
    app.update(Event::LogGap {
        identifier: "ITX-1".into(),
    });
    assert!(app.log.entries.is_empty(), "a gap means the server replays everything");
}

#[test]
fn the_log_keeps_its_place_when_scrolled_and_is_bounded() {
    let mut app = app_with(busy());
    for seq in 0..(LOG_CAPACITY as u64 + 50) {
        app.update(Event::Log {
            identifier: "ITX-1".into(),
            entry: Box::new(log_entry(seq, LogEventKind::Text, "line")),
        });
    }
    assert_eq!(app.log.entries.len(), LOG_CAPACITY);
    app.update(ch('k'));
    assert_eq!(app.log.scroll, LOG_PAGE);
    app.update(Event::Log {
        identifier: "ITX-1".into(),
        entry: Box::new(log_entry(1, LogEventKind::Text, "new")),
    });
    assert_eq!(
        app.log.scroll,
        LOG_PAGE + 1,
        "new lines do not move what the reader sees"
    );
    app.update(key(KeyCode::End));
    assert_eq!(app.log.scroll, 0);
}

#[test]
fn api_answers_land_in_the_status_line_and_expire() {
    let mut app = app_with(busy());
    app.update(Event::ApiDone {
        request: ApiRequest::Cancel {
            identifier: "ITX-1".into(),
        },
        outcome: Err(ApiFailure::Api {
            status: 404,
            code: "not_running".into(),
            message: "ITX-1 is not running".into(),
        }),
        at: t0(),
    });
    let st = app.visible_status().unwrap();
    assert!(st.error);
    assert_eq!(st.text, "cancel ITX-1 failed: not_running: ITX-1 is not running");
    app.update(Event::Tick(t0() + chrono::Duration::seconds(31)));
    assert_eq!(app.visible_status(), None);
    app.update(Event::ApiDone {
        request: ApiRequest::Workers { delta: 1 },
        outcome: Ok(json!({"workers": 5})),
        at: t0(),
    });
    assert_eq!(app.visible_status().unwrap().text, "max concurrent agents: 5");
    app.update(key(KeyCode::Esc));
    assert_eq!(app.visible_status(), None);
}

#[test]
fn hangup_quits() {
    let mut app = app_with(busy());
    assert_eq!(app.update(Event::Hangup), vec![Action::Quit]);
}
