//! Rendering: `draw(&App, &mut Frame)` paints the whole screen from the state alone (pure, so tests
//! render into ratatui's `TestBackend`). The layout degrades with the terminal: panes side by side
//! when there is room, stacked when narrow, lists shortened before the log disappears, and every
//! text cut to its column so nothing is wider than the screen.

use itervox_protocol::api::{HostStatus, RunningRow, StateSnapshot};
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::app::{App, Connection, LogState, Mode, Pane};
use super::humanize::{self, fit, fit_right, single_line, truncate};

/// Width from which the four small panes sit in one row.
const WIDE: u16 = 200;
/// Width from which the small panes sit two by two (below it they are stacked).
const MEDIUM: u16 = 64;
/// Width from which the running table also shows titles.
const TITLES: u16 = 120;

/// Paints the whole screen.
pub fn draw(app: &App, frame: &mut Frame<'_>) {
    let mut rest = frame.area();
    if rest.width == 0 || rest.height == 0 {
        return;
    }
    let header = take_top(&mut rest, 1);
    frame.render_widget(Paragraph::new(header_line(app)), header);
    let footer = take_bottom(&mut rest, 1);
    frame.render_widget(Paragraph::new(footer_line(app)), footer);
    let notices = notice_lines(app);
    if !notices.is_empty() {
        let area = take_top(&mut rest, notices.len() as u16);
        frame.render_widget(Paragraph::new(notices), area);
    }
    draw_body(app, frame, rest);
    match &app.mode {
        Mode::Normal => {}
        Mode::Help => draw_help(app, frame),
        Mode::ConfirmTerminate { identifier } => draw_confirm(frame, identifier),
        Mode::Reply {
            identifier,
            question,
            text,
        } => draw_reply(frame, identifier, question, text),
    }
}

fn take_top(area: &mut Rect, rows: u16) -> Rect {
    let h = rows.min(area.height);
    let top = Rect::new(area.x, area.y, area.width, h);
    area.y += h;
    area.height -= h;
    top
}

fn take_bottom(area: &mut Rect, rows: u16) -> Rect {
    let h = rows.min(area.height);
    area.height -= h;
    Rect::new(area.x, area.y + area.height, area.width, h)
}

fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

fn header_line(app: &App) -> Line<'static> {
    let mut spans = vec![Span::styled(
        " itervox ",
        Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED),
    )];
    spans.push(match &app.connection {
        Connection::Live => Span::styled(" ● live ", Style::new().fg(Color::Green)),
        Connection::Connecting => Span::styled(" … connecting ", Style::new().fg(Color::Yellow)),
        Connection::Disconnected { .. } => Span::styled(
            " ✕ DISCONNECTED ",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
    });
    if let Some(s) = &app.snapshot {
        spans.push(Span::raw(format!(
            " agents {}/{} ",
            s.running.len(),
            s.max_concurrent_agents
        )));
        let mut count = |label: &str, n: usize, warn: bool| {
            let style = if n > 0 && warn {
                Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            spans.push(Span::styled(format!(" {label} {n} "), style));
        };
        count("input", s.input_required.len(), true);
        count("retry", s.retrying.len(), false);
        count("paused", s.paused.len(), false);
        if let Some(t) = &s.totals {
            spans.push(Span::styled(
                format!(" tokens {} ", humanize::count(t.input_tokens + t.output_tokens)),
                dim(),
            ));
        }
    }
    spans.push(Span::styled(format!(" {}", app.api_url), dim()));
    Line::from(spans)
}

/// Lines under the header that the user must not miss: the feed being down (two lines: what is
/// shown and why), or else the most important of the controller's own warnings.
fn notice_lines(app: &App) -> Vec<Line<'static>> {
    let warn = Style::new().fg(Color::Black).bg(Color::Yellow);
    let alarm = Style::new()
        .fg(Color::White)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD);
    let text = |s: String| format!(" {}", single_line(&s));
    if let Connection::Disconnected { error, since, retry_at } = &app.connection {
        let down = humanize::duration_ms((app.now - *since).num_milliseconds().max(0) as u64);
        let wait = (*retry_at - app.now).num_seconds().max(0);
        let retry = if wait > 0 {
            format!("retry in {wait}s")
        } else {
            "retrying now".into()
        };
        let data = match app.snapshot_at {
            Some(at) => format!("showing data from {}", humanize::clock(&at.to_rfc3339(), app.zone)),
            None => "no data yet".into(),
        };
        return vec![
            Line::styled(text(format!("DISCONNECTED for {down} · {retry} · {data}")), alarm),
            Line::styled(text(error.clone()), Style::new().fg(Color::Red)),
        ];
    }
    let s = match (&app.connection, &app.snapshot) {
        (Connection::Connecting, _) | (_, None) => {
            return vec![Line::styled(
                text(format!("connecting to {}…", app.api_url)),
                Style::new().fg(Color::Yellow),
            )];
        }
        (_, Some(s)) => s,
    };
    if let Some(ci) = &s.config_invalid {
        return vec![Line::styled(
            text(format!(
                "{} is invalid, running on the last good version: {}",
                ci.path, ci.error
            )),
            alarm,
        )];
    }
    if let Some(e) = &s.last_tracker_error {
        return vec![Line::styled(
            text(format!(
                "tracker {} failed ({}, {}×): {}",
                e.op, e.kind, e.consecutive_failures, e.message
            )),
            warn,
        )];
    }
    if s.draining == Some(true) {
        return vec![Line::styled(
            text("draining: running sessions finish, no new ones start".into()),
            warn,
        )];
    }
    if s.dry_run == Some(true) {
        return vec![Line::styled(
            text("dry run: the scheduler dispatches nothing (ITERVOX_DRY_RUN)".into()),
            Style::new().fg(Color::Cyan),
        )];
    }
    Vec::new()
}

fn footer_line(app: &App) -> Line<'static> {
    if let Some(st) = app.visible_status() {
        let (mark, style) = if st.error {
            ("✕ ", Style::new().fg(Color::Red).add_modifier(Modifier::BOLD))
        } else {
            ("✓ ", Style::new().fg(Color::Green))
        };
        return Line::styled(format!("{mark}{}", single_line(&st.text)), style);
    }
    let hints: &[(&str, &str)] = match app.mode {
        Mode::Reply { .. } => &[("Enter", "send"), ("Esc", "cancel")],
        Mode::ConfirmTerminate { .. } => &[("y", "terminate"), ("n", "keep")],
        Mode::Help => &[("Esc", "close help"), ("q", "quit")],
        Mode::Normal => &[
            ("?", "help"),
            ("q", "quit"),
            ("x", "cancel"),
            ("r", "resume"),
            ("S", "stop"),
            ("i", "reply"),
            ("+/-", "workers"),
            ("R", "refresh"),
            ("Tab", "pane"),
        ],
    };
    let mut spans = Vec::new();
    for (key, what) in hints {
        spans.push(Span::styled(
            format!(" {key}"),
            Style::new().add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::styled(format!(" {what} "), dim()));
    }
    Line::from(spans)
}

/// One vertical slice of the body.
#[derive(Debug, Clone, PartialEq)]
enum Section {
    Running,
    Row(Vec<Pane>),
    Log,
}

fn rows_of(app: &App, pane: Pane) -> u16 {
    app.keys(pane).len().max(1).min(u16::MAX as usize) as u16
}

/// Splits `total` rows among sections with minimum and wanted heights; the last section (the log)
/// takes what is left, and is promised about a third of the body when there is room for it. When
/// even the minimums do not fit, sections are filled in order and the last ones get nothing.
pub fn plan_heights(total: u16, mins: &[u16], wants: &[u16]) -> Vec<u16> {
    let n = mins.len();
    let mut out = vec![0u16; n];
    if n == 0 {
        return out;
    }
    let needed: u16 = mins.iter().sum();
    if needed > total {
        let mut left = total;
        for (o, m) in out.iter_mut().zip(mins) {
            *o = (*m).min(left);
            left -= *o;
        }
        return out;
    }
    let log_min = mins[n - 1];
    let log_pref = log_min.max(total / 3);
    let mut budget = total.saturating_sub(log_pref).saturating_sub(needed - log_min);
    out[..n - 1].copy_from_slice(&mins[..n - 1]);
    // One row at a time to each list that wants more, so a long list cannot hide a short one.
    let mut grew = true;
    while budget > 0 && grew {
        grew = false;
        for i in 0..n - 1 {
            if budget > 0 && out[i] < wants[i] {
                out[i] += 1;
                budget -= 1;
                grew = true;
            }
        }
    }
    out[n - 1] = total - out[..n - 1].iter().sum::<u16>();
    out
}

fn draw_body(app: &App, frame: &mut Frame<'_>, area: Rect) {
    if area.height == 0 {
        return;
    }
    let sections = if area.width >= WIDE {
        vec![
            Section::Running,
            Section::Row(vec![Pane::InputRequired, Pane::Retrying, Pane::Paused, Pane::Hosts]),
            Section::Log,
        ]
    } else if area.width >= MEDIUM {
        vec![
            Section::Running,
            Section::Row(vec![Pane::InputRequired, Pane::Retrying]),
            Section::Row(vec![Pane::Paused, Pane::Hosts]),
            Section::Log,
        ]
    } else {
        vec![
            Section::Running,
            Section::Row(vec![Pane::InputRequired]),
            Section::Row(vec![Pane::Retrying]),
            Section::Row(vec![Pane::Paused]),
            Section::Row(vec![Pane::Hosts]),
            Section::Log,
        ]
    };
    let mut mins = Vec::new();
    let mut wants = Vec::new();
    for s in &sections {
        let (min, want) = match s {
            Section::Running => (3, 2 + rows_of(app, Pane::Running)),
            Section::Row(panes) => (2, 1 + panes.iter().map(|p| rows_of(app, *p)).max().unwrap_or(1)),
            Section::Log => (3, u16::MAX),
        };
        mins.push(min);
        wants.push(want);
    }
    let heights = plan_heights(area.height, &mins, &wants);
    let mut rest = area;
    for (section, h) in sections.iter().zip(heights) {
        let slice = take_top(&mut rest, h);
        if slice.height == 0 {
            continue;
        }
        match section {
            Section::Running => draw_running(app, frame, slice),
            Section::Row(panes) => {
                let n = panes.len() as u32;
                let parts = Layout::horizontal(vec![Constraint::Ratio(1, n); panes.len()])
                    .spacing(1)
                    .split(slice);
                for (pane, part) in panes.iter().zip(parts.iter()) {
                    draw_list(app, frame, *pane, *part);
                }
            }
            Section::Log => draw_log(app, frame, slice),
        }
    }
}

fn pane_title(app: &App, pane: Pane) -> Line<'static> {
    let (n, label) = match pane {
        Pane::Running => (1, "Running"),
        Pane::InputRequired => (2, "Input required"),
        Pane::Retrying => (3, "Retry queue"),
        Pane::Paused => (4, "Paused"),
        Pane::Hosts => (5, "Hosts"),
    };
    let count = app.keys(pane).len();
    let extra = match (pane, &app.snapshot) {
        (Pane::Running, Some(s)) => format!("{count}/{}", s.max_concurrent_agents),
        _ => count.to_string(),
    };
    let style = if app.focus == pane {
        Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    };
    Line::from(vec![
        Span::styled(format!(" {n} "), dim()),
        Span::styled(format!("{label} ({extra}) "), style),
    ])
}

fn pane_block(app: &App, pane: Pane) -> Block<'static> {
    Block::new()
        .borders(Borders::TOP)
        .border_style(if app.focus == pane {
            Style::new().fg(Color::Yellow)
        } else {
            dim()
        })
        .title(pane_title(app, pane))
}

/// The first row to show so that the selected one is visible in `visible` rows.
fn window_start(selected: Option<usize>, visible: usize) -> usize {
    match selected {
        Some(i) if visible > 0 && i >= visible => i + 1 - visible,
        _ => 0,
    }
}

/// The marker column and row style of row `i` of `pane`.
fn row_look(app: &App, pane: Pane, i: usize) -> (&'static str, Style) {
    let selected = app.selected_index(pane) == Some(i);
    if selected && app.focus == pane {
        ("›", Style::new().add_modifier(Modifier::REVERSED))
    } else if selected {
        ("·", Style::new())
    } else {
        (" ", Style::new())
    }
}

/// What a running-table column shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    Title,
    Host,
    Backend,
    Turn,
    Tokens,
    Elapsed,
    LastEvent,
}

/// A running-table column.
struct Col {
    field: Field,
    label: &'static str,
    width: usize,
    right: bool,
}

/// The columns that fit `width`: optional ones drop out on narrow screens (backend first), the last
/// event takes what is left.
fn running_columns(rows: &[RunningRow], width: u16) -> Vec<Col> {
    let id_w = rows
        .iter()
        .map(|r| humanize::width(&r.identifier))
        .max()
        .unwrap_or(0)
        .clamp(6, 14);
    let w = width as usize;
    let mut cols = vec![Col {
        field: Field::Id,
        label: "ID",
        width: id_w,
        right: false,
    }];
    if width >= TITLES {
        cols.push(Col {
            field: Field::Title,
            label: "TITLE",
            width: (w / 5).min(40),
            right: false,
        });
    }
    // (field, label, width, right-aligned, shown from this screen width)
    let optional = [
        (Field::Host, "HOST", 12, false, 44),
        (Field::Backend, "BACKEND", 7, false, 72),
        (Field::Turn, "TURN", 4, true, 36),
        (Field::Tokens, "TOKENS", 6, true, 56),
        (Field::Elapsed, "ELAPSED", 7, true, 30),
    ];
    for (field, label, cw, right, min_width) in optional {
        if width >= min_width {
            cols.push(Col {
                field,
                label,
                width: cw,
                right,
            });
        }
    }
    let used: usize = 2 + cols.iter().map(|c| c.width + 1).sum::<usize>();
    cols.push(Col {
        field: Field::LastEvent,
        label: "LAST EVENT",
        width: w.saturating_sub(used).max(1),
        right: false,
    });
    cols
}

fn running_cell(app: &App, row: &RunningRow, field: Field) -> String {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "–".into());
    match field {
        Field::Id => row.identifier.clone(),
        Field::Title => row.title.clone().unwrap_or_default(),
        Field::Host => or_dash(&row.worker_host),
        Field::Backend => or_dash(&row.backend),
        Field::Turn => row.turn_count.to_string(),
        Field::Tokens => humanize::count(row.tokens),
        Field::Elapsed => humanize::duration_ms(row.elapsed_ms + app.since_frame_ms()),
        Field::LastEvent => match (&row.last_event, &row.last_message) {
            (Some(e), Some(m)) => format!("{e}: {m}"),
            (None, Some(m)) => m.clone(),
            (Some(e), None) => e.clone(),
            (None, None) => "starting".into(),
        },
    }
}

fn draw_running(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let block = pane_block(app, Pane::Running);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows: &[RunningRow] = app.snapshot.as_ref().map(|s| s.running.as_slice()).unwrap_or(&[]);
    let cols = running_columns(rows, inner.width);
    let mut lines = Vec::new();
    let mut head = String::from("  ");
    for c in &cols {
        head.push_str(&if c.right {
            fit_right(c.label, c.width)
        } else {
            fit(c.label, c.width)
        });
        head.push(' ');
    }
    lines.push(Line::styled(head, dim().add_modifier(Modifier::BOLD)));
    if rows.is_empty() {
        lines.push(Line::styled(
            match &app.snapshot {
                Some(_) => "  no running sessions",
                None => "  waiting for the first state frame…",
            },
            dim(),
        ));
    }
    let visible = inner.height.saturating_sub(1) as usize;
    let start = window_start(app.selected_index(Pane::Running), visible);
    for (i, row) in rows.iter().enumerate().skip(start).take(visible) {
        let (mark, style) = row_look(app, Pane::Running, i);
        let mut text = format!("{mark} ");
        for c in &cols {
            let cell = single_line(&running_cell(app, row, c.field));
            text.push_str(&if c.right {
                fit_right(&cell, c.width)
            } else {
                fit(&cell, c.width)
            });
            text.push(' ');
        }
        lines.push(Line::styled(text, style));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The text of row `i` of a small pane, cut to `width` columns.
fn list_row(app: &App, s: &StateSnapshot, pane: Pane, i: usize, width: usize) -> Vec<Span<'static>> {
    let longest = app.keys(pane).iter().map(|k| humanize::width(k)).max().unwrap_or(0);
    let id_w = longest.clamp(4, 14).min(width / 3).max(4);
    let rest = width.saturating_sub(id_w + 1);
    let id = |id: &str| Span::raw(format!("{} ", fit(&single_line(id), id_w)));
    match pane {
        Pane::InputRequired => {
            let r = &s.input_required[i];
            vec![
                id(&r.identifier),
                Span::styled(truncate(&single_line(&r.context), rest), Style::new().fg(Color::Yellow)),
            ]
        }
        Pane::Retrying => {
            let r = &s.retrying[i];
            let due = match app.due_in_ms(&r.due_at) {
                Some(ms) if ms > 0 => format!("in {}", humanize::duration_ms(ms as u64)),
                Some(_) => "due now".into(),
                None => single_line(&r.due_at),
            };
            let head = format!("#{} {due}", r.attempt);
            let err = r.error.as_deref().map(single_line).unwrap_or_default();
            let tail = rest.saturating_sub(humanize::width(&head) + 1);
            vec![
                id(&r.identifier),
                Span::raw(truncate(&head, rest)),
                Span::styled(format!(" {}", truncate(&err, tail)), dim()),
            ]
        }
        Pane::Paused => {
            let ident = &s.paused[i];
            let reason = s.pause_reasons.get(ident).map(|r| single_line(r));
            vec![
                id(ident),
                Span::styled(truncate(reason.as_deref().unwrap_or("paused"), rest), dim()),
            ]
        }
        Pane::Hosts => {
            let h = &s.ssh_hosts[i];
            let host_w = id_w;
            let (word, color) = match h.status {
                Some(HostStatus::Up) => ("up", Color::Green),
                Some(HostStatus::Connecting) => ("connecting", Color::Yellow),
                Some(HostStatus::Down) => ("down", Color::Red),
                Some(HostStatus::Draining) => ("draining", Color::Magenta),
                None => ("?", Color::DarkGray),
            };
            let cap = if h.capacity == 0 {
                "∞".to_string()
            } else {
                h.capacity.to_string()
            };
            let latency = match h.latency_ms {
                Some(l) if l < 1.0 => " <1ms".to_string(),
                Some(l) => format!(" {l:.0}ms"),
                None => String::new(),
            };
            let load = format!(" {}/{cap}{latency}", h.running);
            let err = h
                .last_error
                .as_deref()
                .map(|e| format!(" {}", single_line(e)))
                .unwrap_or_default();
            let mut left = width;
            let mut spans = Vec::new();
            for (text, style) in [
                (format!("{} ", fit(&single_line(&h.host), host_w)), Style::new()),
                (word.to_string(), Style::new().fg(color)),
                (load, Style::new()),
                (err, Style::new().fg(Color::Red)),
            ] {
                let cut = truncate(&text, left);
                left = left.saturating_sub(humanize::width(&cut));
                spans.push(Span::styled(cut, style));
            }
            spans
        }
        Pane::Running => Vec::new(),
    }
}

fn draw_list(app: &App, frame: &mut Frame<'_>, pane: Pane, area: Rect) {
    let block = pane_block(app, pane);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(s) = &app.snapshot else {
        return;
    };
    let n = app.keys(pane).len();
    if n == 0 {
        let none = match pane {
            Pane::InputRequired => "  no questions",
            Pane::Retrying => "  nothing queued",
            Pane::Paused => "  none paused",
            Pane::Hosts => "  no hosts",
            Pane::Running => "  none",
        };
        frame.render_widget(Paragraph::new(Line::styled(none, dim())), inner);
        return;
    }
    let visible = inner.height as usize;
    let start = window_start(app.selected_index(pane), visible);
    let width = (inner.width as usize).saturating_sub(2);
    let mut lines = Vec::new();
    for i in (start..n).take(visible) {
        let (mark, style) = row_look(app, pane, i);
        let mut spans = vec![Span::raw(format!("{mark} "))];
        spans.extend(list_row(app, s, pane, i, width));
        lines.push(Line::from(spans).style(style));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

fn log_line(app: &App, e: &IssueLogEntry) -> Line<'static> {
    let (kind, kind_style) = match e.event {
        LogEventKind::Text => ("text", Style::new()),
        LogEventKind::Action => ("action", Style::new().fg(Color::Cyan)),
        LogEventKind::Subagent => ("agent", Style::new().fg(Color::Magenta)),
        LogEventKind::Pr => ("pr", Style::new().fg(Color::Green)),
        LogEventKind::Turn => ("turn", dim()),
        LogEventKind::Error => ("error", Style::new().fg(Color::Red)),
        LogEventKind::Warn => ("warn", Style::new().fg(Color::Yellow)),
        LogEventKind::Info => ("info", dim()),
    };
    let message_style = match e.level {
        LogLevel::Error => Style::new().fg(Color::Red),
        LogLevel::Warn => Style::new().fg(Color::Yellow),
        LogLevel::Info => Style::new(),
    };
    let mut message = single_line(&e.message);
    if let Some(tool) = &e.tool {
        message = format!("{}: {message}", single_line(tool));
    }
    Line::from(vec![
        Span::styled(format!("{} ", humanize::clock(&e.time, app.zone)), dim()),
        Span::styled(format!("{kind:<6} "), kind_style),
        Span::styled(message, message_style),
    ])
}

fn draw_log(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let log = &app.log;
    let mut title = vec![Span::styled(" Log ", Style::new().add_modifier(Modifier::BOLD))];
    match &log.identifier {
        None => title.push(Span::styled("· select an issue to follow its log ", dim())),
        Some(id) => {
            title.push(Span::styled(
                format!("· {} ", single_line(id)),
                Style::new().add_modifier(Modifier::BOLD),
            ));
            let (text, style) = match &log.state {
                LogState::Connecting => ("· connecting… ".to_string(), Style::new().fg(Color::Yellow)),
                LogState::Following if log.scroll > 0 => (
                    format!("· scrolled up {} (End follows) ", log.scroll),
                    Style::new().fg(Color::Yellow),
                ),
                LogState::Following => ("· following ".to_string(), Style::new().fg(Color::Green)),
                LogState::Interrupted { error, retry_at } => {
                    let wait = (*retry_at - app.now).num_seconds().max(0);
                    (
                        format!("· interrupted, retry in {wait}s: {} ", single_line(error)),
                        Style::new().fg(Color::Red),
                    )
                }
            };
            title.push(Span::styled(text, style));
        }
    }
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(dim())
        .title(Line::from(title));
    let mut inner = block.inner(area);
    frame.render_widget(block, area);
    // An issue waiting for input: its whole question first (rows in the small pane are cut).
    let question = log.identifier.as_ref().and_then(|id| {
        app.snapshot
            .as_ref()?
            .input_required
            .iter()
            .find(|r| &r.identifier == id)
            .map(|r| r.context.clone())
    });
    if let Some(q) = question {
        let text = format!("Question: {}", single_line(&q));
        let rows = humanize::width(&text)
            .div_ceil(inner.width.max(1) as usize)
            .min(u16::MAX as usize) as u16;
        let q_rows = rows.min(inner.height / 2).max(1);
        let q_area = take_top(&mut inner, q_rows);
        frame.render_widget(
            Paragraph::new(Line::styled(text, Style::new().fg(Color::Yellow)))
                .wrap(Wrap { trim: true })
                .block(Block::new()),
            q_area,
        );
    }
    let visible = inner.height as usize;
    if log.identifier.is_some() && log.entries.is_empty() {
        frame.render_widget(Paragraph::new(Line::styled("  no entries yet", dim())), inner);
        return;
    }
    let end = log.entries.len().saturating_sub(log.scroll);
    let start = end.saturating_sub(visible);
    let lines: Vec<Line<'static>> = log.entries.range(start..end).map(|e| log_line(app, e)).collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

/// A rectangle of at most `w` x `h` centred in `area`.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h)
}

const HELP: &[(&str, &str)] = &[
    ("↑ ↓", "select a row"),
    ("Tab ← → 1-5", "move between panes"),
    ("x", "cancel the selected running issue (pauses it)"),
    ("r", "resume the selected paused issue"),
    ("S", "terminate the selected issue (asks first)"),
    ("i", "reply to an issue waiting for input"),
    ("+ -", "one more / one fewer concurrent agent"),
    ("R", "poll the tracker now"),
    ("PgUp k PgDn j", "scroll the log; End follows it again"),
    ("Esc", "clear the status line"),
    ("?", "show or hide this help"),
    ("q Ctrl-C", "quit"),
];

fn draw_help(app: &App, frame: &mut Frame<'_>) {
    let key_w = HELP.iter().map(|(k, _)| humanize::width(k)).max().unwrap_or(0);
    let mut lines: Vec<Line<'static>> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!(" {} ", fit(k, key_w)),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw((*what).to_string()),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(format!(" API {}", app.api_url), dim()));
    lines.push(Line::styled(" Esc or ? closes this help", dim()));
    let area = centered(frame.area(), 66, lines.len() as u16 + 2);
    let block = Block::bordered()
        .title(Line::styled(" Help: keys ", Style::new().add_modifier(Modifier::BOLD)))
        .border_style(Style::new().fg(Color::Cyan));
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_confirm(frame: &mut Frame<'_>, identifier: &str) {
    let id = single_line(identifier);
    let lines = vec![
        Line::styled(format!("Terminate {id}?"), Style::new().add_modifier(Modifier::BOLD)),
        Line::raw("The agent is killed, the claim released and the issue returned to an active state."),
        Line::raw(""),
        Line::from(vec![
            Span::styled("y", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(" terminate    "),
            Span::styled("n", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw("/Esc keep it"),
        ]),
    ];
    let area = centered(frame.area(), 60, 8);
    let block = Block::bordered()
        .title(" Confirm ")
        .border_style(Style::new().fg(Color::Red));
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(block), area);
}

fn draw_reply(frame: &mut Frame<'_>, identifier: &str, question: &str, text: &str) {
    let screen = frame.area();
    let width = screen.width.saturating_sub(4).clamp(1, 100);
    let inner_w = width.saturating_sub(2).max(1) as usize;
    // Rough wrapped height of the question, capped so the input line always fits.
    let q = question.trim();
    let q_lines = q
        .lines()
        .map(|l| humanize::width(l).div_ceil(inner_w).max(1))
        .sum::<usize>()
        .max(1);
    let max_q = screen.height.saturating_sub(6).max(1) as usize;
    let q_h = q_lines.min(max_q) as u16;
    let area = centered(screen, width, q_h + 4);
    let block = Block::bordered()
        .title(Line::styled(
            format!(" Reply to {} ", single_line(identifier)),
            Style::new().add_modifier(Modifier::BOLD),
        ))
        .border_style(Style::new().fg(Color::Yellow));
    let inner = block.inner(area);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    let mut rest = inner;
    let q_area = take_top(&mut rest, q_h.min(inner.height.saturating_sub(2)));
    // The question may span lines; strip control characters from each line but keep the breaks.
    let q_text: Vec<Line<'static>> = q.lines().map(|l| Line::raw(single_line(l))).collect();
    frame.render_widget(
        Paragraph::new(q_text)
            .wrap(Wrap { trim: false })
            .style(Style::new().fg(Color::Yellow)),
        q_area,
    );
    let input = take_bottom(&mut rest, 1);
    let room = (input.width as usize).saturating_sub(3);
    // Show the end of a long reply: that is where the cursor is.
    let mut shown: Vec<char> = Vec::new();
    let mut used = 0;
    let mut buf = [0u8; 4];
    for c in text.chars().rev() {
        let w = humanize::width(c.encode_utf8(&mut buf));
        if used + w > room {
            break;
        }
        used += w;
        shown.push(c);
    }
    let shown: String = shown.into_iter().rev().collect();
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("> ", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(shown),
        ])),
        input,
    );
    if input.height > 0 {
        frame.set_cursor_position((input.x + 2 + used as u16, input.y));
    }
    if area.height < screen.height {
        // Say how to leave, under the box when there is a row for it.
        let below = Rect::new(area.x, area.y + area.height, area.width, 1);
        if below.y < screen.y + screen.height {
            frame.render_widget(Clear, below);
            frame.render_widget(
                Paragraph::new(Line::styled(" Enter sends · Esc cancels · Ctrl-U clears", dim())),
                below,
            );
        }
    }
}

#[cfg(test)]
mod tests;
