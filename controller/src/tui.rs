//! `itervox tui`: a terminal client of the `/api/v1` API, like the web dashboard (it never reads
//! controller internals), usable over SSH in an 80x24 terminal.
//!
//! Layout of the module: a pure core, [`app::App`] with `update(Event) -> Vec<Action>`, and a pure
//! [`draw::draw`]; around it the I/O: [`client::ApiClient`] (REST calls, error envelope),
//! [`feed`] (the reconnecting `/events` and `/log-stream` SSE feeds, framed by [`sse`]) and
//! [`event_loop`] (the terminal, keys, ticks and signals).

use std::io::IsTerminal;

use chrono::{Local, Offset, Utc};

pub mod api_request;
pub mod app;
pub mod client;
pub mod draw;
pub mod event_loop;
pub mod feed;
pub mod humanize;
pub mod sse;

use app::{App, Event};
use client::{ApiClient, ApiFailure, ClientSetupError};

/// Why `itervox tui` could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error(transparent)]
    Setup(#[from] ClientSetupError),
    #[error("itervox tui needs an interactive terminal (stdin and stdout must be a TTY)")]
    NotATerminal,
    #[error("the API at {url} refused the token ({failure}); pass --token or set ITERVOX_API_TOKEN")]
    Unauthorized { url: String, failure: ApiFailure },
    #[error("{url} does not answer like an Itervox API ({failure}); check --url")]
    NotItervox { url: String, failure: ApiFailure },
    #[error("terminal error: {0}")]
    Terminal(#[from] std::io::Error),
}

/// Runs the TUI against the controller at `url` (the address, the API root or the dashboard URL),
/// sending `token` as a bearer token when given, until the user quits.
///
/// A wrong token or a URL that is not an Itervox API fails before the screen is taken over; a
/// controller that is down is shown as disconnected and retried.
pub async fn run(url: String, token: Option<String>) -> Result<(), TuiError> {
    let client = ApiClient::new(&url, token)?;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(TuiError::NotATerminal);
    }
    let first = match client.state().await {
        Ok(snapshot) => Some(Event::Snapshot {
            snapshot: Box::new(snapshot),
            at: Utc::now(),
        }),
        Err(failure) if failure.status() == Some(401) => {
            return Err(TuiError::Unauthorized {
                url: client.base_url(),
                failure,
            });
        }
        Err(failure)
            if matches!(failure, ApiFailure::Decode { .. })
                || failure.status().is_some_and(|s| (400..500).contains(&s)) =>
        {
            return Err(TuiError::NotItervox {
                url: client.base_url(),
                failure,
            });
        }
        // Down, restarting or busy: show it as such and keep trying.
        Err(_) => None,
    };
    let zone = Local::now().offset().fix();
    let app = App::new(client.base_url(), zone, Utc::now());
    event_loop::run_terminal(client, app, first).await?;
    Ok(())
}

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;
