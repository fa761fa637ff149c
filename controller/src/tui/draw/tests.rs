//! Rendering into ratatui's `TestBackend` from state-frame fixtures, asserting on the text of the
//! rendered buffer at 80x24 (an SSH session's default) and at a larger size.

use std::time::Duration;

use crossterm::event::KeyCode;
use itervox_protocol::LogEventKind;
use itervox_protocol::api::{ConfigInvalid, StateSnapshot};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::*;
use crate::tui::app::Event;
use crate::tui::fixture::{app_with, busy, ch, key, log_entry, running, t0};

/// Renders `app` at `w`x`h` and returns the screen as lines of text.
fn screen(app: &App, w: u16, h: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| draw(app, f)).unwrap();
    let buf = terminal.backend().buffer();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect()
}

fn find<'a>(lines: &'a [String], needle: &str) -> Option<&'a String> {
    lines.iter().find(|l| l.contains(needle))
}

#[track_caller]
fn line_with<'a>(lines: &'a [String], needle: &str) -> &'a String {
    find(lines, needle).unwrap_or_else(|| panic!("no line contains {needle:?}; screen:\n{}", lines.join("\n")))
}

#[test]
fn at_80x24_running_rows_show_host_backend_turn_tokens_elapsed_and_last_event() {
    let lines = screen(&app_with(busy()), 80, 24);
    let row = line_with(&lines, "ITX-1");
    for part in ["build-1", "claude", " 3 ", "12.3k", "4m02s", "action: cargo test"] {
        assert!(row.contains(part), "running row lacks {part:?}: {row:?}");
    }
    let row = line_with(&lines, "ITX-5");
    assert!(row.contains("local") && row.contains(" 7 "), "{row:?}");
    assert!(row.starts_with("  "), "unfocused rows have no marker: {row:?}");
    assert!(
        line_with(&lines, "ITX-1").starts_with("›"),
        "the selected row is marked"
    );
    line_with(&lines, "HOST");
    line_with(&lines, "Running (2/4)");
}

#[test]
fn at_80x24_every_pane_is_there() {
    let lines = screen(&app_with(busy()), 80, 24);
    assert!(
        line_with(&lines, "ITX-3").contains("Which license"),
        "the input pane shows the question"
    );
    assert!(
        line_with(&lines, "ITX-2").contains("#2 in 42s"),
        "the retry queue shows when"
    );
    assert!(
        line_with(&lines, "ITX-7").contains("cancelled from the TUI"),
        "paused shows the reason"
    );
    assert!(line_with(&lines, "build-2").contains("down"));
    assert!(line_with(&lines, "up 1/2").contains("local"));
    assert!(line_with(&lines, "up 1/2").contains("<1ms"));
    line_with(&lines, "Log · ITX-1");
    assert!(lines[0].contains("live") && lines[0].contains("agents 2/4") && lines[0].contains("input 1"));
    assert!(
        lines[23].contains("? help"),
        "the footer shows the keys: {:?}",
        lines[23]
    );
}

#[test]
fn a_larger_terminal_shows_titles_full_questions_and_host_errors() {
    let lines = screen(&app_with(busy()), 160, 48);
    assert!(line_with(&lines, "ITX-1").contains("Title of ITX-1"));
    assert!(line_with(&lines, "build-2").contains("connection refused"));
    line_with(&lines, "Which license should the project use: MIT or Apache-2.0?");
    let lines = screen(&app_with(busy()), 220, 50);
    let pane_titles = line_with(&lines, "Input required");
    for title in ["Retry queue", "Paused", "Hosts"] {
        assert!(
            pane_titles.contains(title),
            "very wide screens put the small panes in one row"
        );
    }
}

#[test]
fn the_question_of_a_selected_waiting_issue_is_shown_whole_above_its_log() {
    let mut s = busy();
    s.input_required[0].context = format!("{} Which license should the project use?", "Some context. ".repeat(12));
    let mut app = app_with(s);
    app.update(ch('2'));
    let lines = screen(&app, 80, 24);
    line_with(&lines, "Log · ITX-3");
    let q = lines
        .iter()
        .position(|l| l.contains("Question:"))
        .expect("a question block");
    let rest = lines[q..].join("");
    assert!(
        rest.contains("Which license should the project use?"),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn a_disconnected_feed_says_so_and_dates_what_is_shown() {
    let mut app = app_with(busy());
    app.update(Event::Disconnected {
        error: "cannot reach 127.0.0.1:8090: Connection refused (os error 111)".into(),
        retry_in: Duration::from_secs(4),
        at: t0() + chrono::Duration::seconds(30),
    });
    app.update(Event::Tick(t0() + chrono::Duration::seconds(33)));
    let lines = screen(&app, 80, 24);
    assert!(lines[0].contains("DISCONNECTED"), "{:?}", lines[0]);
    assert!(
        lines[1].contains("DISCONNECTED for 3s · retry in 1s · showing data from 10:00:00"),
        "{:?}",
        lines[1]
    );
    assert!(
        lines[2].contains("cannot reach 127.0.0.1:8090: Connection refused"),
        "{:?}",
        lines[2]
    );
    assert!(
        line_with(&lines, "ITX-1").contains("4m02s"),
        "elapsed freezes at the last frame"
    );
}

#[test]
fn before_the_first_frame_the_screen_says_it_is_connecting() {
    let app = App::new(
        "http://127.0.0.1:8090/api/v1",
        chrono::FixedOffset::east_opt(0).unwrap(),
        t0(),
    );
    let lines = screen(&app, 80, 24);
    line_with(&lines, "connecting to http://127.0.0.1:8090/api/v1");
    line_with(&lines, "waiting for the first state frame");
}

#[test]
fn the_help_overlay_lists_the_keys() {
    let mut app = app_with(busy());
    app.update(ch('?'));
    let lines = screen(&app, 80, 24);
    line_with(&lines, "Help: keys");
    line_with(&lines, "terminate the selected issue (asks first)");
    line_with(&lines, "reply to an issue waiting for input");
    line_with(&lines, "quit");
}

#[test]
fn the_terminate_dialog_names_the_issue() {
    let mut app = app_with(busy());
    app.update(ch('S'));
    let lines = screen(&app, 80, 24);
    line_with(&lines, "Terminate ITX-1?");
    line_with(&lines, "terminate");
}

#[test]
fn the_reply_box_shows_the_question_and_what_is_typed() {
    let mut app = app_with(busy());
    app.update(ch('i'));
    for c in "MIT please".chars() {
        app.update(ch(c));
    }
    let lines = screen(&app, 80, 24);
    line_with(&lines, "Reply to ITX-3");
    line_with(&lines, "Which license should the project use");
    line_with(&lines, "> MIT please");
    line_with(&lines, "Enter sends");
}

#[test]
fn the_log_pane_shows_entries_in_the_viewers_time() {
    let mut app = app_with(busy());
    app.update(Event::LogConnected {
        identifier: "ITX-1".into(),
    });
    app.update(Event::Log {
        identifier: "ITX-1".into(),
        entry: Box::new(log_entry(5, LogEventKind::Action, "cargo build")),
    });
    app.update(Event::Log {
        identifier: "ITX-1".into(),
        entry: Box::new(log_entry(6, LogEventKind::Error, "build failed")),
    });
    let lines = screen(&app, 80, 24);
    line_with(&lines, "Log · ITX-1 · following");
    assert!(line_with(&lines, "cargo build").contains("10:00:05 action Bash: cargo build"));
    assert!(line_with(&lines, "build failed").contains("error"));
}

#[test]
fn agent_text_cannot_drive_the_terminal() {
    let mut s = busy();
    s.running[0].last_message = Some("evil\x1b]0;pwned\x07\x1b[2J\rtext".into());
    let lines = screen(&app_with(s), 120, 24);
    assert!(lines.iter().all(|l| !l.chars().any(|c| c.is_control())));
    assert!(line_with(&lines, "ITX-1").contains("evil ]0;pwned [2J text"));
}

#[test]
fn the_most_important_notice_wins() {
    let mut s = busy();
    s.dry_run = Some(true);
    line_with(
        &screen(&app_with(s.clone()), 100, 24),
        "dry run: the scheduler dispatches nothing",
    );
    s.config_invalid = Some(ConfigInvalid {
        path: "/srv/WORKFLOW.md".into(),
        error: "agent.max_turns: expected a number".into(),
    });
    let lines = screen(&app_with(s), 100, 24);
    assert!(lines[1].contains("/srv/WORKFLOW.md is invalid"), "{:?}", lines[1]);
    assert!(find(&lines, "dry run").is_none());
}

#[test]
fn a_selected_row_beyond_the_pane_scrolls_into_view() {
    let mut s = busy();
    s.running = (1..=20)
        .map(|i| running(&format!("ITX-{i}"), "local", "claude", i))
        .collect();
    let mut app = app_with(s);
    for _ in 0..19 {
        app.update(key(KeyCode::Down));
    }
    let lines = screen(&app, 80, 24);
    assert!(line_with(&lines, "ITX-20").starts_with("›"));
    assert!(find(&lines, "ITX-1 ").is_none(), "the top rows scrolled away");
}

#[test]
fn a_long_running_list_does_not_hide_the_hosts() {
    let mut s = busy();
    s.running = (1..=9)
        .map(|i| running(&format!("ITX-{i}"), "build-1", "claude", i))
        .collect();
    let lines = screen(&app_with(s), 80, 24);
    assert!(line_with(&lines, "build-2").contains("down"), "{}", lines.join("\n"));
    line_with(&lines, "ITX-3");
}

#[test]
fn narrow_screens_stack_the_panes() {
    let lines = screen(&app_with(busy()), 50, 40);
    let input = lines.iter().position(|l| l.contains("Input required")).unwrap();
    let retry = lines.iter().position(|l| l.contains("Retry queue")).unwrap();
    assert!(retry > input, "one pane per row");
    assert!(line_with(&lines, "ITX-1").contains("build-1"));
}

#[test]
fn any_size_renders_without_panicking() {
    let mut states = vec![app_with(busy()), app_with(StateSnapshot::default())];
    let mut help = app_with(busy());
    help.update(ch('?'));
    let mut reply = app_with(busy());
    reply.update(ch('i'));
    reply.update(Event::Paste("a very long reply ".repeat(40)));
    let mut confirm = app_with(busy());
    confirm.update(ch('S'));
    let mut down = app_with(busy());
    down.update(Event::Disconnected {
        error: "x".repeat(300),
        retry_in: Duration::from_secs(1),
        at: t0(),
    });
    states.extend([help, reply, confirm, down]);
    for app in &states {
        for w in (0..=130).step_by(9) {
            for h in [0, 1, 2, 3, 4, 5, 6, 8, 10, 13, 17, 24, 30] {
                screen(app, w, h);
            }
        }
    }
}

#[test]
fn height_planning_shares_rows_and_keeps_the_log() {
    assert_eq!(plan_heights(22, &[3, 2, 2, 3], &[4, 2, 4, u16::MAX]), vec![4, 2, 4, 12]);
    assert_eq!(
        plan_heights(22, &[3, 2, 2, 3], &[40, 9, 9, u16::MAX]),
        vec![6, 5, 4, 7],
        "long lists share, the log keeps a third"
    );
    assert_eq!(
        plan_heights(6, &[3, 2, 2, 3], &[4, 2, 4, u16::MAX]),
        vec![3, 2, 1, 0],
        "tiny: first come"
    );
    assert_eq!(plan_heights(0, &[3, 3], &[3, 3]), vec![0, 0]);
}
