//! The TUI's state and its one transition function, [`App::update`]: an [`Event`] in (a key, a state
//! frame, a log entry, an API answer, a clock tick), a list of [`Action`]s out (API calls, which log to
//! follow, quit). Pure: no I/O and no clock reads (times arrive inside events), so every key and every
//! frame is tested as data.

use std::collections::VecDeque;

use chrono::{DateTime, FixedOffset, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use itervox_protocol::IssueLogEntry;
use itervox_protocol::api::StateSnapshot;
use serde_json::Value;

use super::api_request::ApiRequest;
use super::client::ApiFailure;
use super::humanize;

/// Log entries kept for the followed issue; older ones are dropped from the view.
pub const LOG_CAPACITY: usize = 5000;
/// Lines moved by one log page key.
pub const LOG_PAGE: usize = 10;
/// Longest reply accepted in the input box, in characters.
pub const MAX_REPLY_CHARS: usize = 8000;
/// How long a confirmation stays in the status line.
const INFO_SECONDS: i64 = 8;
/// How long an error stays in the status line (unless replaced or dismissed with Esc).
const ERROR_SECONDS: i64 = 30;

/// Everything that can change the TUI's state.
#[derive(Debug, Clone)]
pub enum Event {
    Key(KeyEvent),
    /// Bracketed paste (only used by the reply box).
    Paste(String),
    /// The terminal changed size: only a redraw is needed.
    Resize,
    /// The clock moved (elapsed times, "due in", status expiry).
    Tick(DateTime<Utc>),
    /// A full state frame from `/events` (the feed is live), received at `at`.
    Snapshot {
        snapshot: Box<StateSnapshot>,
        at: DateTime<Utc>,
    },
    /// The `/events` feed is down; the next attempt is in `retry_in`.
    Disconnected {
        error: String,
        retry_in: std::time::Duration,
        at: DateTime<Utc>,
    },
    /// A frame arrived that does not parse as a `StateSnapshot` (the feed stays up).
    BadFrame {
        error: String,
        at: DateTime<Utc>,
    },
    /// The log stream of `identifier` is (again) following.
    LogConnected {
        identifier: String,
    },
    /// One log entry of `identifier`, in order.
    Log {
        identifier: String,
        entry: Box<IssueLogEntry>,
    },
    /// The server no longer has the resume position and replays the whole log.
    LogGap {
        identifier: String,
    },
    /// The log stream of `identifier` broke; it retries in `retry_in`.
    LogInterrupted {
        identifier: String,
        error: String,
        retry_in: std::time::Duration,
        at: DateTime<Utc>,
    },
    /// An API call finished.
    ApiDone {
        request: ApiRequest,
        outcome: Result<Value, ApiFailure>,
        at: DateTime<Utc>,
    },
    /// The terminal went away (hangup, end of input) or SIGTERM arrived.
    Hangup,
}

/// What the edge must do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make this API call and report it back as `Event::ApiDone`.
    Call(ApiRequest),
    /// Follow this issue's log stream (stopping any other), or stop following.
    FollowLog(Option<String>),
    Quit,
}

/// The list panes, in focus order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    Running,
    InputRequired,
    Retrying,
    Paused,
    Hosts,
}

impl Pane {
    pub const ALL: [Pane; 5] = [
        Pane::Running,
        Pane::InputRequired,
        Pane::Retrying,
        Pane::Paused,
        Pane::Hosts,
    ];

    fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }

    fn step(self, by: isize) -> Pane {
        let n = Pane::ALL.len() as isize;
        Pane::ALL[(self.index() as isize + by).rem_euclid(n) as usize]
    }

    /// Whether the rows of this pane are issues (and so have a log to follow).
    pub fn holds_issues(self) -> bool {
        self != Pane::Hosts
    }
}

/// The `/events` feed as the user should understand it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// No frame yet and no failure yet.
    Connecting,
    Live,
    /// The data on screen is from the last frame, received before `since`.
    Disconnected {
        error: String,
        since: DateTime<Utc>,
        retry_at: DateTime<Utc>,
    },
}

/// What the keyboard is talking to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Help,
    /// `S` asks before a hard stop.
    ConfirmTerminate {
        identifier: String,
    },
    /// `i` opened the one-line reply box.
    Reply {
        identifier: String,
        question: String,
        text: String,
    },
}

/// The status line: the outcome of the last action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub text: String,
    pub error: bool,
    pub at: DateTime<Utc>,
}

/// The log stream's health, shown in the log pane's title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogState {
    Connecting,
    Following,
    Interrupted { error: String, retry_at: DateTime<Utc> },
}

/// The followed issue's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogView {
    pub identifier: Option<String>,
    pub entries: VecDeque<IssueLogEntry>,
    /// Lines scrolled up from the newest entry; 0 follows the tail.
    pub scroll: usize,
    pub state: LogState,
}

impl LogView {
    fn new(identifier: Option<String>) -> LogView {
        LogView {
            identifier,
            entries: VecDeque::new(),
            scroll: 0,
            state: LogState::Connecting,
        }
    }

    fn is(&self, identifier: &str) -> bool {
        self.identifier.as_deref() == Some(identifier)
    }
}

/// A pane's selected row, remembered by key so it survives reordering between frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Selection {
    index: usize,
    key: Option<String>,
}

/// Where an issue is, according to the last frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuePlace {
    Running,
    InputRequired,
    Retrying,
    Paused,
    Elsewhere,
}

/// The whole TUI state.
#[derive(Debug, Clone)]
pub struct App {
    /// The API root, for the header and messages.
    pub api_url: String,
    /// The viewer's time zone, for clock times.
    pub zone: FixedOffset,
    /// The latest time an event carried.
    pub now: DateTime<Utc>,
    pub snapshot: Option<StateSnapshot>,
    /// When (local clock) the last frame arrived; elapsed times advance from it.
    pub snapshot_at: Option<DateTime<Utc>>,
    pub connection: Connection,
    pub focus: Pane,
    selections: [Selection; 5],
    pub mode: Mode,
    pub status: Option<Status>,
    pub log: LogView,
}

impl App {
    pub fn new(api_url: impl Into<String>, zone: FixedOffset, now: DateTime<Utc>) -> App {
        App {
            api_url: api_url.into(),
            zone,
            now,
            snapshot: None,
            snapshot_at: None,
            connection: Connection::Connecting,
            focus: Pane::Running,
            selections: Default::default(),
            mode: Mode::Normal,
            status: None,
            log: LogView::new(None),
        }
    }

    /// The keys of a pane's rows, in display order.
    pub fn keys(&self, pane: Pane) -> Vec<&str> {
        let Some(s) = &self.snapshot else {
            return Vec::new();
        };
        match pane {
            Pane::Running => s.running.iter().map(|r| r.identifier.as_str()).collect(),
            Pane::InputRequired => s.input_required.iter().map(|r| r.identifier.as_str()).collect(),
            Pane::Retrying => s.retrying.iter().map(|r| r.identifier.as_str()).collect(),
            Pane::Paused => s.paused.iter().map(String::as_str).collect(),
            Pane::Hosts => s.ssh_hosts.iter().map(|h| h.host.as_str()).collect(),
        }
    }

    /// The selected row of a pane, if it has rows.
    pub fn selected_index(&self, pane: Pane) -> Option<usize> {
        let n = self.keys(pane).len();
        (n > 0).then(|| self.selections[pane.index()].index.min(n - 1))
    }

    /// The issue the keys act on: the selected row of the focused pane, when that pane lists issues.
    pub fn selected_issue(&self) -> Option<&str> {
        if !self.focus.holds_issues() {
            return None;
        }
        let i = self.selected_index(self.focus)?;
        self.keys(self.focus).get(i).copied()
    }

    /// Where the last frame puts an issue.
    pub fn place(&self, identifier: &str) -> IssuePlace {
        let Some(s) = &self.snapshot else {
            return IssuePlace::Elsewhere;
        };
        if s.running.iter().any(|r| r.identifier == identifier) {
            IssuePlace::Running
        } else if s.input_required.iter().any(|r| r.identifier == identifier) {
            IssuePlace::InputRequired
        } else if s.paused.iter().any(|p| p == identifier) {
            IssuePlace::Paused
        } else if s.retrying.iter().any(|r| r.identifier == identifier) {
            IssuePlace::Retrying
        } else {
            IssuePlace::Elsewhere
        }
    }

    /// The status line if it has not expired.
    pub fn visible_status(&self) -> Option<&Status> {
        let s = self.status.as_ref()?;
        let keep = if s.error { ERROR_SECONDS } else { INFO_SECONDS };
        ((self.now - s.at).num_seconds() < keep).then_some(s)
    }

    /// Milliseconds since the last frame while the feed is live; frozen (0) when it is not, so the
    /// screen never pretends to know more than the last frame said.
    pub fn since_frame_ms(&self) -> u64 {
        match (&self.connection, self.snapshot_at) {
            (Connection::Live, Some(at)) => (self.now - at).num_milliseconds().max(0) as u64,
            _ => 0,
        }
    }

    /// Milliseconds until a retry is due (negative: overdue), counted on the controller's clock.
    pub fn due_in_ms(&self, due_at: &str) -> Option<i64> {
        let s = self.snapshot.as_ref()?;
        let due = humanize::parse_time(due_at)?;
        let generated = humanize::parse_time(&s.generated_at)?;
        Some((due - generated).num_milliseconds() - self.since_frame_ms() as i64)
    }

    /// Applies one event and says what the edge must do.
    pub fn update(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Key(key) => self.on_key(key),
            Event::Paste(text) => {
                if let Mode::Reply { text: reply, .. } = &mut self.mode {
                    push_reply(reply, &humanize::single_line(&text));
                }
                Vec::new()
            }
            Event::Resize => Vec::new(),
            Event::Tick(now) => {
                self.advance(now);
                Vec::new()
            }
            Event::Snapshot { snapshot, at } => self.on_snapshot(*snapshot, at),
            Event::Disconnected { error, retry_in, at } => {
                self.advance(at);
                let since = match &self.connection {
                    Connection::Disconnected { since, .. } => *since,
                    _ => at,
                };
                self.connection = Connection::Disconnected {
                    error,
                    since,
                    retry_at: at + chrono::Duration::from_std(retry_in).unwrap_or_default(),
                };
                Vec::new()
            }
            Event::BadFrame { error, at } => {
                self.advance(at);
                self.error(format!(
                    "the controller sent a state frame this TUI cannot read: {error}"
                ));
                Vec::new()
            }
            Event::LogConnected { identifier } => {
                if self.log.is(&identifier) {
                    self.log.state = LogState::Following;
                }
                Vec::new()
            }
            Event::Log { identifier, entry } => {
                if self.log.is(&identifier) {
                    self.log.state = LogState::Following;
                    self.log.entries.push_back(*entry);
                    if self.log.entries.len() > LOG_CAPACITY {
                        self.log.entries.pop_front();
                    }
                    if self.log.scroll > 0 {
                        // Keep the lines the reader is looking at in place.
                        self.log.scroll = (self.log.scroll + 1).min(self.log.entries.len().saturating_sub(1));
                    }
                }
                Vec::new()
            }
            Event::LogGap { identifier } => {
                if self.log.is(&identifier) {
                    self.log.entries.clear();
                    self.log.scroll = 0;
                }
                Vec::new()
            }
            Event::LogInterrupted {
                identifier,
                error,
                retry_in,
                at,
            } => {
                self.advance(at);
                if self.log.is(&identifier) {
                    self.log.state = LogState::Interrupted {
                        error,
                        retry_at: at + chrono::Duration::from_std(retry_in).unwrap_or_default(),
                    };
                }
                Vec::new()
            }
            Event::ApiDone { request, outcome, at } => {
                self.advance(at);
                match outcome {
                    Ok(answer) => self.info(request.success(&answer)),
                    Err(failure) => self.error(format!("{} failed: {failure}", request.describe())),
                }
                Vec::new()
            }
            Event::Hangup => vec![Action::Quit],
        }
    }

    /// Moves the clock forward (events from different tasks may carry slightly older times).
    fn advance(&mut self, at: DateTime<Utc>) {
        self.now = self.now.max(at);
    }

    fn info(&mut self, text: String) {
        self.status = Some(Status {
            text,
            error: false,
            at: self.now,
        });
    }

    fn error(&mut self, text: String) {
        self.status = Some(Status {
            text,
            error: true,
            at: self.now,
        });
    }

    fn on_snapshot(&mut self, snapshot: StateSnapshot, at: DateTime<Utc>) -> Vec<Action> {
        self.advance(at);
        self.connection = Connection::Live;
        let first = self.snapshot.is_none();
        self.snapshot = Some(snapshot);
        self.snapshot_at = Some(at);
        for pane in Pane::ALL {
            let keys: Vec<String> = self.keys(pane).into_iter().map(str::to_string).collect();
            let sel = &mut self.selections[pane.index()];
            if let Some(pos) = sel.key.as_ref().and_then(|k| keys.iter().position(|x| x == k)) {
                sel.index = pos;
            } else {
                sel.index = sel.index.min(keys.len().saturating_sub(1));
            }
            sel.key = keys.get(sel.index).cloned();
        }
        // On the first frame, start where there is something to see.
        if first
            && self.keys(self.focus).is_empty()
            && let Some(pane) = Pane::ALL
                .into_iter()
                .find(|p| p.holds_issues() && !self.keys(*p).is_empty())
        {
            self.focus = pane;
        }
        // A dialog about an issue that moved on would only earn a 409: close it and say why.
        match &self.mode {
            Mode::Reply { identifier, .. } if self.place(identifier) != IssuePlace::InputRequired => {
                let msg = format!("{identifier} no longer waits for input; reply box closed");
                self.mode = Mode::Normal;
                self.info(msg);
            }
            Mode::ConfirmTerminate { identifier }
                if !matches!(
                    self.place(identifier),
                    IssuePlace::Running | IssuePlace::Paused | IssuePlace::InputRequired
                ) =>
            {
                let msg = format!("{identifier} is no longer running or paused; nothing to terminate");
                self.mode = Mode::Normal;
                self.info(msg);
            }
            _ => {}
        }
        if self.log.identifier.is_none()
            && let Some(id) = self.selected_issue().map(str::to_string)
        {
            return self.follow(id);
        }
        Vec::new()
    }

    fn follow(&mut self, identifier: String) -> Vec<Action> {
        if self.log.is(&identifier) {
            return Vec::new();
        }
        self.log = LogView::new(Some(identifier.clone()));
        vec![Action::FollowLog(Some(identifier))]
    }

    /// After the selection or focus moved: follow the newly selected issue's log.
    fn follow_selection(&mut self) -> Vec<Action> {
        match self.selected_issue().map(str::to_string) {
            Some(id) => self.follow(id),
            None => Vec::new(),
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Vec<Action> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c' | 'C')) {
            return vec![Action::Quit];
        }
        match self.mode.clone() {
            Mode::Normal => self.key_normal(key),
            Mode::Help => {
                match key.code {
                    KeyCode::Char('q') if !ctrl => return vec![Action::Quit],
                    KeyCode::Esc | KeyCode::Enter | KeyCode::Char('?') => self.mode = Mode::Normal,
                    _ => {}
                }
                Vec::new()
            }
            Mode::ConfirmTerminate { identifier } => match key.code {
                KeyCode::Char('y' | 'Y') => {
                    self.mode = Mode::Normal;
                    self.info(format!("terminating {identifier}…"));
                    vec![Action::Call(ApiRequest::Terminate { identifier })]
                }
                KeyCode::Char('n' | 'N' | 'q') | KeyCode::Esc => {
                    self.mode = Mode::Normal;
                    self.info(format!("{identifier} left running: terminate cancelled"));
                    Vec::new()
                }
                _ => Vec::new(),
            },
            Mode::Reply { identifier, text, .. } => self.key_reply(key, identifier, text),
        }
    }

    fn key_reply(&mut self, key: KeyEvent, identifier: String, text: String) -> Vec<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Esc => {
                self.mode = Mode::Normal;
                self.info(format!("reply to {identifier} not sent"));
                Vec::new()
            }
            KeyCode::Enter => {
                let message = text.trim().to_string();
                if message.is_empty() {
                    self.error("type a reply first (Esc closes the box)".into());
                    return Vec::new();
                }
                self.mode = Mode::Normal;
                self.info(format!("sending the reply to {identifier}…"));
                vec![Action::Call(ApiRequest::ProvideInput { identifier, message })]
            }
            code => {
                if let Mode::Reply { text, .. } = &mut self.mode {
                    match code {
                        KeyCode::Backspace => {
                            text.pop();
                        }
                        KeyCode::Char('u') if ctrl => text.clear(),
                        KeyCode::Char(c) if !ctrl && !alt => push_reply(text, &c.to_string()),
                        _ => {}
                    }
                }
                Vec::new()
            }
        }
    }

    fn key_normal(&mut self, key: KeyEvent) -> Vec<Action> {
        if key
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SUPER)
        {
            return Vec::new();
        }
        match key.code {
            KeyCode::Char('q') => vec![Action::Quit],
            KeyCode::Char('?') => {
                self.mode = Mode::Help;
                Vec::new()
            }
            KeyCode::Tab | KeyCode::Right => self.focus_on(self.focus.step(1)),
            KeyCode::BackTab | KeyCode::Left => self.focus_on(self.focus.step(-1)),
            KeyCode::Char(c @ '1'..='5') => self.focus_on(Pane::ALL[(c as u8 - b'1') as usize]),
            KeyCode::Up => self.move_selection(-1),
            KeyCode::Down => self.move_selection(1),
            KeyCode::PageUp | KeyCode::Char('k') => {
                self.log.scroll = (self.log.scroll + LOG_PAGE).min(self.log.entries.len().saturating_sub(1));
                Vec::new()
            }
            KeyCode::PageDown | KeyCode::Char('j') => {
                self.log.scroll = self.log.scroll.saturating_sub(LOG_PAGE);
                Vec::new()
            }
            KeyCode::End => {
                self.log.scroll = 0;
                Vec::new()
            }
            KeyCode::Char('x') => self.act_on_selected("x cancels a running issue", &[IssuePlace::Running], |id| {
                ApiRequest::Cancel { identifier: id }
            }),
            KeyCode::Char('r') => self.act_on_selected("r resumes a paused issue", &[IssuePlace::Paused], |id| {
                ApiRequest::Resume { identifier: id }
            }),
            KeyCode::Char('S') => self.ask_terminate(),
            KeyCode::Char('i') => self.open_reply(),
            KeyCode::Char('+' | '=') => vec![Action::Call(ApiRequest::Workers { delta: 1 })],
            KeyCode::Char('-' | '_') => vec![Action::Call(ApiRequest::Workers { delta: -1 })],
            KeyCode::Char('R') => {
                self.info("refresh requested…".into());
                vec![Action::Call(ApiRequest::Refresh)]
            }
            KeyCode::Esc => {
                self.status = None;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn focus_on(&mut self, pane: Pane) -> Vec<Action> {
        self.focus = pane;
        self.follow_selection()
    }

    fn move_selection(&mut self, by: isize) -> Vec<Action> {
        let keys: Vec<String> = self.keys(self.focus).into_iter().map(str::to_string).collect();
        if keys.is_empty() {
            return Vec::new();
        }
        let sel = &mut self.selections[self.focus.index()];
        let cur = sel.index.min(keys.len() - 1) as isize;
        sel.index = (cur + by).clamp(0, keys.len() as isize - 1) as usize;
        sel.key = keys.get(sel.index).cloned();
        self.follow_selection()
    }

    /// Checks that the selected issue is in one of `places` before making `call` for it.
    fn act_on_selected(
        &mut self,
        what: &str,
        places: &[IssuePlace],
        call: impl FnOnce(String) -> ApiRequest,
    ) -> Vec<Action> {
        let Some(id) = self.selected_issue().map(str::to_string) else {
            self.error(format!(
                "{what}: select it first (Tab moves between panes, ↑/↓ between rows)"
            ));
            return Vec::new();
        };
        if !places.contains(&self.place(&id)) {
            self.error(format!("{what}; {id} is {}", place_words(self.place(&id))));
            return Vec::new();
        }
        let request = call(id);
        self.info(format!("{}…", request.describe()));
        vec![Action::Call(request)]
    }

    fn ask_terminate(&mut self) -> Vec<Action> {
        let what = "S terminates a running or paused issue";
        let Some(id) = self.selected_issue().map(str::to_string) else {
            self.error(format!(
                "{what}: select it first (Tab moves between panes, ↑/↓ between rows)"
            ));
            return Vec::new();
        };
        match self.place(&id) {
            IssuePlace::Running | IssuePlace::Paused | IssuePlace::InputRequired => {
                self.mode = Mode::ConfirmTerminate { identifier: id };
            }
            other => self.error(format!("{what}; {id} is {}", place_words(other))),
        }
        Vec::new()
    }

    fn open_reply(&mut self) -> Vec<Action> {
        let waiting = |app: &App, id: &str| {
            app.snapshot
                .as_ref()
                .and_then(|s| s.input_required.iter().find(|r| r.identifier == id))
                .map(|r| r.context.clone())
        };
        let selected = self.selected_issue().map(str::to_string);
        let target = match selected
            .as_deref()
            .and_then(|id| waiting(self, id).map(|q| (id.to_string(), q)))
        {
            Some(found) => Some(found),
            None => {
                // Not on a waiting issue: go to the input-required pane's selected row (the box names it).
                let i = self.selected_index(Pane::InputRequired);
                let id = i.and_then(|i| self.keys(Pane::InputRequired).get(i).map(|s| s.to_string()));
                id.and_then(|id| waiting(self, &id).map(|q| (id, q)))
            }
        };
        match target {
            Some((identifier, question)) => {
                let mut actions = Vec::new();
                if self.focus != Pane::InputRequired {
                    actions = self.focus_on(Pane::InputRequired);
                }
                self.mode = Mode::Reply {
                    identifier,
                    question,
                    text: String::new(),
                };
                actions
            }
            None => {
                self.error("no issue is waiting for input".into());
                Vec::new()
            }
        }
    }
}

fn push_reply(text: &mut String, add: &str) {
    let room = MAX_REPLY_CHARS.saturating_sub(text.chars().count());
    text.extend(add.chars().filter(|c| !c.is_control()).take(room));
}

fn place_words(place: IssuePlace) -> &'static str {
    match place {
        IssuePlace::Running => "running",
        IssuePlace::InputRequired => "waiting for input",
        IssuePlace::Retrying => "in the retry queue",
        IssuePlace::Paused => "paused",
        IssuePlace::Elsewhere => "not running, paused or queued",
    }
}

#[cfg(test)]
mod tests;
