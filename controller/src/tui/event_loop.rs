//! The edge of the TUI: takes over the terminal (and always gives it back), starts the tasks that
//! turn keys, clock ticks, signals, API feeds and API answers into [`Event`]s, feeds them to
//! [`App::update`], performs the [`Action`]s it returns, and redraws.

use std::io::{self, Write};
use std::time::Duration;

use chrono::Utc;
use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste, EventStream};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::app::{Action, App, Event};
use super::client::ApiClient;
use super::draw::draw;
use super::feed::{self, FeedOptions};

/// Events handled before the screen is redrawn, so a burst (a log replay) costs one frame, not
/// thousands.
const MAX_EVENTS_PER_FRAME: usize = 512;

/// Owns raw mode and the alternate screen; restores the terminal when dropped (errors, early
/// returns; ratatui's panic hook covers panics).
struct TerminalGuard {
    terminal: ratatui::DefaultTerminal,
}

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        let terminal = match ratatui::try_init() {
            Ok(t) => t,
            Err(e) => {
                // Raw mode may already be on: undo what was done before reporting.
                let _ = ratatui::try_restore();
                return Err(e);
            }
        };
        // Paste arrives as one event (for the reply box) instead of a key storm.
        let _ = crossterm::execute!(io::stdout(), EnableBracketedPaste);
        Ok(TerminalGuard { terminal })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = crossterm::execute!(io::stdout(), DisableBracketedPaste);
        let _ = self.terminal.show_cursor();
        if let Err(e) = ratatui::try_restore() {
            eprintln!("itervox tui: could not restore the terminal: {e}");
        }
        let _ = io::stdout().flush();
    }
}

/// Forwards terminal input. The end of input (the terminal is gone) becomes `Hangup`.
async fn read_terminal(tx: mpsc::Sender<Event>) {
    let mut input = EventStream::new();
    while let Some(item) = input.next().await {
        let event = match item {
            Ok(crossterm::event::Event::Key(k)) => Event::Key(k),
            Ok(crossterm::event::Event::Paste(p)) => Event::Paste(p),
            Ok(crossterm::event::Event::Resize(..)) => Event::Resize,
            Ok(_) => continue,
            Err(_) => break,
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
    let _ = tx.send(Event::Hangup).await;
}

/// One tick a second keeps elapsed times and countdowns moving.
async fn tick(tx: mpsc::Sender<Event>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        if tx.send(Event::Tick(Utc::now())).await.is_err() {
            return;
        }
    }
}

/// SIGTERM, SIGINT (`kill -INT`; Ctrl-C itself arrives as a key in raw mode) or SIGHUP (the SSH
/// session closed) end the TUI cleanly, restoring the terminal.
async fn watch_signals(tx: mpsc::Sender<Event>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = hup.recv() => {}
    }
    let _ = tx.send(Event::Hangup).await;
}

/// Runs the TUI on this process's terminal until the user quits or the terminal goes away.
pub async fn run_terminal(client: ApiClient, mut app: App, first: Option<Event>) -> io::Result<()> {
    let mut guard = TerminalGuard::enter()?;
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
    let options = FeedOptions::default();
    let mut tasks: Vec<JoinHandle<()>> = vec![
        tokio::spawn(feed::follow_state(client.clone(), options, tx.clone())),
        tokio::spawn(read_terminal(tx.clone())),
        tokio::spawn(tick(tx.clone())),
        tokio::spawn(watch_signals(tx.clone())),
    ];
    let mut log_task: Option<JoinHandle<()>> = None;
    let mut pending: Vec<Action> = first.map(|e| app.update(e)).unwrap_or_default();
    let result = 'run: loop {
        for action in pending.drain(..) {
            match action {
                Action::Quit => break 'run Ok(()),
                Action::Call(request) => {
                    let client = client.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let outcome = client.send(&request).await;
                        let _ = tx
                            .send(Event::ApiDone {
                                request,
                                outcome,
                                at: Utc::now(),
                            })
                            .await;
                    });
                }
                Action::FollowLog(identifier) => {
                    if let Some(old) = log_task.take() {
                        old.abort();
                    }
                    if let Some(id) = identifier {
                        log_task = Some(tokio::spawn(feed::follow_log(client.clone(), id, options, tx.clone())));
                    }
                }
            }
        }
        if let Err(e) = guard.terminal.draw(|f| draw(&app, f)) {
            break 'run Err(e);
        }
        let Some(event) = rx.recv().await else {
            break 'run Ok(());
        };
        pending.extend(app.update(event));
        for _ in 1..MAX_EVENTS_PER_FRAME {
            match rx.try_recv() {
                Ok(event) => pending.extend(app.update(event)),
                Err(_) => break,
            }
        }
    };
    tasks.extend(log_task);
    for t in tasks {
        t.abort();
    }
    drop(guard);
    result
}
