//! Process-wide counters for `GET /metrics` (Prometheus text). Gauges that describe orchestration state
//! (running, retrying, per-host load) are read from the snapshot when the page is rendered; only event
//! counts live here.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use itervox_protocol::api::StateSnapshot;

/// Counters shared by the scheduler and the API.
#[derive(Debug, Default)]
pub struct Metrics {
    pub dispatches: AtomicU64,
    pub run_failures: AtomicU64,
    pub tracker_requests: AtomicU64,
    pub tracker_errors: AtomicU64,
    sse_clients: AtomicI64,
}

/// Counts one connected SSE client while alive.
#[derive(Debug)]
pub struct SseGuard(Arc<Metrics>);

impl Drop for SseGuard {
    fn drop(&mut self) {
        self.0.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn sse_client(self: &Arc<Self>) -> SseGuard {
        self.sse_clients.fetch_add(1, Ordering::Relaxed);
        SseGuard(self.clone())
    }

    pub fn sse_clients(&self) -> i64 {
        self.sse_clients.load(Ordering::Relaxed)
    }

    /// Renders the Prometheus text exposition.
    pub fn render(&self, s: &StateSnapshot) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        gauge(
            "itervox_running",
            "Agent sessions running now.",
            f64::from(s.counts.running),
        );
        gauge(
            "itervox_retrying",
            "Issues waiting in the retry queue.",
            f64::from(s.counts.retrying),
        );
        gauge("itervox_paused", "Paused issues.", f64::from(s.counts.paused));
        gauge(
            "itervox_input_required",
            "Issues waiting for a human answer.",
            s.input_required.len() as f64,
        );
        gauge(
            "itervox_max_concurrent_agents",
            "Configured global concurrency.",
            f64::from(s.max_concurrent_agents),
        );
        gauge(
            "itervox_sse_clients",
            "Connected SSE clients.",
            self.sse_clients() as f64,
        );
        let _ = writeln!(
            out,
            "# HELP itervox_host_running Sessions running per host.\n# TYPE itervox_host_running gauge"
        );
        for h in &s.ssh_hosts {
            let _ = writeln!(
                out,
                "itervox_host_running{{host=\"{}\"}} {}",
                escape(&h.host),
                h.running
            );
        }
        let _ = writeln!(
            out,
            "# HELP itervox_host_up Whether a host is connected.\n# TYPE itervox_host_up gauge"
        );
        for h in &s.ssh_hosts {
            let up = matches!(h.status, Some(itervox_protocol::api::HostStatus::Up));
            let _ = writeln!(out, "itervox_host_up{{host=\"{}\"}} {}", escape(&h.host), u8::from(up));
        }
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter(
            "itervox_dispatches_total",
            "Runs started.",
            self.dispatches.load(Ordering::Relaxed),
        );
        counter(
            "itervox_run_failures_total",
            "Runs that failed.",
            self.run_failures.load(Ordering::Relaxed),
        );
        counter(
            "itervox_tracker_requests_total",
            "Tracker polls and refreshes made.",
            self.tracker_requests.load(Ordering::Relaxed),
        );
        counter(
            "itervox_tracker_errors_total",
            "Tracker polls and refreshes that failed.",
            self.tracker_errors.load(Ordering::Relaxed),
        );
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
