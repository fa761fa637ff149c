//! The scheduler's pure decisions: which issues may be dispatched and in what order, how long to back off,
//! what happens after a failure, and when a run has stalled. No I/O and no clock reads: time is an
//! argument, so all of it is tested as plain data.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::TrackerConfig;
use crate::tracker::Issue;

/// Why an idle issue is not dispatched (the API's `ineligibleReason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ineligible {
    NotActiveState,
    TerminalState,
    Backlog,
    Paused,
    InputRequired,
    AlreadyRunning,
    /// Waiting in the retry queue until the due time.
    RetryPending,
    NoSlots,
    PerStateLimit,
    BlockedBy(String),
    /// A previous run opened a pull request; re-dispatch only through reanalyze.
    OpenPr,
    /// Every host is down, draining or full.
    NoHostAvailable,
    /// `ITERVOX_DRY_RUN=1`.
    DryRun,
    /// A state move written by the controller has not reached the tracker yet.
    PendingWrite,
}

impl Ineligible {
    /// The wire form (`blocked_by:ENG-1` for blockers).
    pub fn reason(&self) -> String {
        match self {
            Ineligible::NotActiveState => "not_active_state".into(),
            Ineligible::TerminalState => "terminal_state".into(),
            Ineligible::Backlog => "backlog".into(),
            Ineligible::Paused => "paused".into(),
            Ineligible::InputRequired => "input_required".into(),
            Ineligible::AlreadyRunning => "already_running".into(),
            Ineligible::RetryPending => "retry_pending".into(),
            Ineligible::NoSlots => "no_slots".into(),
            Ineligible::PerStateLimit => "per_state_limit".into(),
            Ineligible::BlockedBy(id) => format!("blocked_by:{id}"),
            Ineligible::OpenPr => "open_pr".into(),
            Ineligible::NoHostAvailable => "no_host_available".into(),
            Ineligible::DryRun => "dry_run".into(),
            Ineligible::PendingWrite => "pending_tracker_write".into(),
        }
    }
}

/// What eligibility needs to know besides the issue itself.
#[derive(Debug, Clone, Default)]
pub struct EligibilityView<'a> {
    pub tracker: Option<&'a TrackerConfig>,
    pub running: BTreeSet<&'a str>,
    pub paused: BTreeSet<&'a str>,
    pub input_required: BTreeSet<&'a str>,
    /// Retry entries not yet due.
    pub retry_waiting: BTreeSet<&'a str>,
    pub open_pr: BTreeSet<&'a str>,
    /// Issues allowed past the open-PR guard once (reanalyze).
    pub forced: BTreeSet<&'a str>,
    pub pending_write: BTreeSet<&'a str>,
    /// Known states of other issues (for blockers whose state the tracker did not include).
    pub known_states: BTreeMap<&'a str, &'a str>,
    pub max_concurrent: u32,
    pub running_count: u32,
    /// Lower-cased state → cap.
    pub per_state_caps: BTreeMap<String, u32>,
    /// Lower-cased state → running count (by the state each run had at dispatch).
    pub running_by_state: BTreeMap<String, u32>,
}

/// Checks one issue against every rule except host availability, in the order an operator reads them.
pub fn eligibility(issue: &Issue, v: &EligibilityView<'_>) -> Result<(), Ineligible> {
    let id = issue.identifier.as_str();
    if v.running.contains(id) {
        return Err(Ineligible::AlreadyRunning);
    }
    if v.input_required.contains(id) {
        return Err(Ineligible::InputRequired);
    }
    if v.paused.contains(id) {
        return Err(Ineligible::Paused);
    }
    if let Some(t) = v.tracker {
        if t.is_terminal(&issue.state) {
            return Err(Ineligible::TerminalState);
        }
        if !t.is_active(&issue.state) {
            return Err(if t.is_backlog(&issue.state) {
                Ineligible::Backlog
            } else {
                Ineligible::NotActiveState
            });
        }
    }
    if v.pending_write.contains(id) {
        return Err(Ineligible::PendingWrite);
    }
    if v.retry_waiting.contains(id) {
        return Err(Ineligible::RetryPending);
    }
    if v.open_pr.contains(id) && !v.forced.contains(id) {
        return Err(Ineligible::OpenPr);
    }
    for blocker in &issue.blocked_by {
        let state = blocker
            .state
            .as_deref()
            .or_else(|| v.known_states.get(blocker.identifier.as_str()).copied());
        let resolved = match (state, v.tracker) {
            (Some(s), Some(t)) => t.is_terminal(s),
            // Unknown state: treat as unresolved, so work never starts on top of an unfinished blocker.
            (None, _) => false,
            (Some(_), None) => true,
        };
        if !resolved {
            return Err(Ineligible::BlockedBy(blocker.identifier.clone()));
        }
    }
    if v.running_count >= v.max_concurrent {
        return Err(Ineligible::NoSlots);
    }
    let state_key = issue.state.to_lowercase();
    if let Some(&cap) = v.per_state_caps.get(&state_key)
        && v.running_by_state.get(&state_key).copied().unwrap_or(0) >= cap
    {
        return Err(Ineligible::PerStateLimit);
    }
    Ok(())
}

/// Dispatch order: priority (lower first, none last), then oldest creation, then identifier (numeric
/// parts compared as numbers, so ITX-9 comes before ITX-10).
pub fn dispatch_order(a: &Issue, b: &Issue) -> Ordering {
    let pa = a.priority.filter(|p| *p > 0);
    let pb = b.priority.filter(|p| *p > 0);
    let by_priority = match (pa, pb) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    let by_created = match (a.created_at, b.created_at) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_priority
        .then(by_created)
        .then_with(|| natural_cmp(&a.identifier, &b.identifier))
}

/// Compares strings with runs of digits compared by value.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let tx = dx.iter().skip_while(|&&c| c == b'0').count();
                let ty = dy.iter().skip_while(|&&c| c == b'0').count();
                let ord = tx.cmp(&ty).then_with(|| dx[nx - tx..].cmp(&dy[ny - ty..]));
                if ord != Ordering::Equal {
                    return ord;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

/// Backoff before retry number `attempt` (the attempt that just failed, 1-based):
/// `min(10 s * 2^(attempt-1), max)`.
pub fn backoff(attempt: u32, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(20);
    Duration::from_secs(10).saturating_mul(1u32 << exp).min(max)
}

/// What happens after attempt `attempt` of an issue failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Retry as attempt `attempt + 1` at `due_at`.
    Retry { next_attempt: u32, due_at: DateTime<Utc> },
    /// No retries left: move to the failed state, or pause when none is configured.
    Exhausted { failed_state: Option<String> },
}

/// Decides the retry after a failure. `max_retries` 0 means unlimited; a vendor rate-limit reset later
/// than the backoff wins (capped at six hours, since a reset further away is not believable).
pub fn after_failure(
    attempt: u32,
    max_retries: u32,
    max_backoff: Duration,
    rate_limit_reset: Option<DateTime<Utc>>,
    failed_state: Option<&str>,
    now: DateTime<Utc>,
) -> AfterFailure {
    if max_retries != 0 && attempt > max_retries {
        return AfterFailure::Exhausted {
            failed_state: failed_state.map(str::to_string),
        };
    }
    let backoff_due = now + chrono::Duration::from_std(backoff(attempt, max_backoff)).unwrap_or_default();
    let limit = now + chrono::Duration::hours(6);
    let due_at = match rate_limit_reset {
        Some(reset) if reset > backoff_due => reset.min(limit),
        _ => backoff_due,
    };
    AfterFailure::Retry {
        next_attempt: attempt + 1,
        due_at,
    }
}

/// True when a run has shown no progress for longer than `stall_timeout_ms` (`<= 0` disables).
pub fn is_stalled(last_progress_ms_ago: u64, stall_timeout_ms: i64) -> bool {
    stall_timeout_ms > 0 && last_progress_ms_ago > stall_timeout_ms as u64
}

/// Whether a run should go on with another turn after a successful one.
///
/// A turn that made no tool calls means the agent considers itself done; Codex sessions are one turn
/// per run; a run stops at `max_turns`; and the tracker issue must still be active (an agent or a person
/// may have moved it on).
pub fn continue_after_turn(
    turn: u32,
    max_turns: u32,
    tool_calls: u32,
    single_turn_backend: bool,
    still_active: bool,
) -> bool {
    !single_turn_backend && turn < max_turns && tool_calls > 0 && still_active
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Blocker;
    use chrono::TimeZone;

    fn issue(id: &str, state: &str) -> Issue {
        Issue {
            id: id.into(),
            identifier: id.into(),
            title: id.into(),
            state: state.into(),
            ..Issue::default()
        }
    }

    fn view(tracker: &TrackerConfig) -> EligibilityView<'_> {
        EligibilityView {
            tracker: Some(tracker),
            max_concurrent: 10,
            ..EligibilityView::default()
        }
    }

    #[test]
    fn eligibility_table() {
        let t = TrackerConfig::default();
        let base = view(&t);
        let check = |i: &Issue, v: &EligibilityView<'_>| eligibility(i, v).err().map(|e| e.reason());

        assert_eq!(check(&issue("A-1", "Todo"), &base), None);
        assert_eq!(
            check(&issue("A-1", "todo"), &base),
            None,
            "states compare case-insensitively"
        );
        assert_eq!(check(&issue("A-1", "Done"), &base).as_deref(), Some("terminal_state"));
        assert_eq!(check(&issue("A-1", "Backlog"), &base).as_deref(), Some("backlog"));
        assert_eq!(
            check(&issue("A-1", "Review"), &base).as_deref(),
            Some("not_active_state")
        );

        let mut v = view(&t);
        v.running.insert("A-1");
        assert_eq!(check(&issue("A-1", "Todo"), &v).as_deref(), Some("already_running"));
        let mut v = view(&t);
        v.paused.insert("A-1");
        assert_eq!(check(&issue("A-1", "Todo"), &v).as_deref(), Some("paused"));
        let mut v = view(&t);
        v.input_required.insert("A-1");
        assert_eq!(check(&issue("A-1", "Todo"), &v).as_deref(), Some("input_required"));
        let mut v = view(&t);
        v.retry_waiting.insert("A-1");
        assert_eq!(check(&issue("A-1", "Todo"), &v).as_deref(), Some("retry_pending"));
        let mut v = view(&t);
        v.open_pr.insert("A-1");
        assert_eq!(check(&issue("A-1", "Todo"), &v).as_deref(), Some("open_pr"));
        v.forced.insert("A-1");
        assert_eq!(
            check(&issue("A-1", "Todo"), &v),
            None,
            "reanalyze bypasses the open-PR guard"
        );

        let mut v = view(&t);
        v.running_count = 10;
        assert_eq!(check(&issue("A-1", "Todo"), &v).as_deref(), Some("no_slots"));

        let mut v = view(&t);
        v.per_state_caps.insert("todo".into(), 1);
        v.running_by_state.insert("todo".into(), 1);
        assert_eq!(check(&issue("A-1", "Todo"), &v).as_deref(), Some("per_state_limit"));
        assert_eq!(check(&issue("A-2", "In Progress"), &v), None);
    }

    #[test]
    fn blockers_gate_until_terminal() {
        let t = TrackerConfig::default();
        let v = view(&t);
        let mut i = issue("A-2", "Todo");
        i.blocked_by = vec![Blocker {
            id: "A-1".into(),
            identifier: "A-1".into(),
            state: Some("In Progress".into()),
        }];
        assert_eq!(eligibility(&i, &v).unwrap_err(), Ineligible::BlockedBy("A-1".into()));
        i.blocked_by[0].state = Some("Done".into());
        assert_eq!(eligibility(&i, &v), Ok(()));
        // Unknown state of the blocker: looked up among known issues, else blocking.
        i.blocked_by[0].state = None;
        assert_eq!(eligibility(&i, &v).unwrap_err(), Ineligible::BlockedBy("A-1".into()));
        let mut v2 = view(&t);
        v2.known_states.insert("A-1", "Cancelled");
        assert_eq!(eligibility(&i, &v2), Ok(()));
    }

    #[test]
    fn ordering_is_priority_then_age_then_identifier() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut issues: Vec<Issue> = vec![
            Issue {
                priority: None,
                created_at: Some(t0),
                ..issue("X-10", "Todo")
            },
            Issue {
                priority: Some(2),
                created_at: Some(t0 + chrono::Duration::days(1)),
                ..issue("X-3", "Todo")
            },
            Issue {
                priority: Some(2),
                created_at: Some(t0),
                ..issue("X-4", "Todo")
            },
            Issue {
                priority: Some(1),
                created_at: None,
                ..issue("X-5", "Todo")
            },
            Issue {
                priority: None,
                created_at: Some(t0),
                ..issue("X-9", "Todo")
            },
            Issue {
                priority: Some(0),
                created_at: None,
                ..issue("X-1", "Todo")
            },
        ];
        issues.sort_by(dispatch_order);
        let ids: Vec<_> = issues.iter().map(|i| i.identifier.as_str()).collect();
        assert_eq!(ids, vec!["X-5", "X-4", "X-3", "X-9", "X-10", "X-1"]);
    }

    #[test]
    fn natural_comparison() {
        assert_eq!(natural_cmp("ITX-9", "ITX-10"), Ordering::Less);
        assert_eq!(natural_cmp("ITX-010", "ITX-9"), Ordering::Greater);
        assert_eq!(natural_cmp("A", "A"), Ordering::Equal);
        assert_eq!(natural_cmp("A-1", "B-1"), Ordering::Less);
    }

    #[test]
    fn backoff_values() {
        let max = Duration::from_secs(300);
        let secs: Vec<u64> = (1..=7).map(|a| backoff(a, max).as_secs()).collect();
        assert_eq!(secs, vec![10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(100, max).as_secs(), 300);
        assert_eq!(backoff(3, Duration::from_secs(15)).as_secs(), 15);
    }

    #[test]
    fn failures_retry_until_exhausted() {
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
        let max = Duration::from_secs(300);
        assert_eq!(
            after_failure(1, 5, max, None, None, now),
            AfterFailure::Retry {
                next_attempt: 2,
                due_at: now + chrono::Duration::seconds(10)
            }
        );
        assert_eq!(
            after_failure(5, 5, max, None, None, now),
            AfterFailure::Retry {
                next_attempt: 6,
                due_at: now + chrono::Duration::seconds(160)
            }
        );
        assert_eq!(
            after_failure(6, 5, max, None, Some("Failed"), now),
            AfterFailure::Exhausted {
                failed_state: Some("Failed".into())
            }
        );
        assert_eq!(
            after_failure(6, 5, max, None, None, now),
            AfterFailure::Exhausted { failed_state: None }
        );
        // Unlimited.
        assert!(matches!(
            after_failure(1000, 0, max, None, None, now),
            AfterFailure::Retry { next_attempt: 1001, .. }
        ));
        // A vendor reset later than the backoff wins, capped at six hours.
        let reset = now + chrono::Duration::minutes(30);
        assert_eq!(
            after_failure(1, 5, max, Some(reset), None, now),
            AfterFailure::Retry {
                next_attempt: 2,
                due_at: reset
            }
        );
        let far = now + chrono::Duration::days(3);
        assert_eq!(
            after_failure(1, 5, max, Some(far), None, now),
            AfterFailure::Retry {
                next_attempt: 2,
                due_at: now + chrono::Duration::hours(6)
            }
        );
        let early = now + chrono::Duration::seconds(1);
        assert_eq!(
            after_failure(1, 5, max, Some(early), None, now),
            AfterFailure::Retry {
                next_attempt: 2,
                due_at: now + chrono::Duration::seconds(10)
            }
        );
    }

    #[test]
    fn stall_and_continuation_rules() {
        assert!(!is_stalled(10_000, 0));
        assert!(!is_stalled(10_000, -1));
        assert!(!is_stalled(10_000, 10_000));
        assert!(is_stalled(10_001, 10_000));

        assert!(continue_after_turn(1, 20, 3, false, true));
        assert!(
            !continue_after_turn(1, 20, 0, false, true),
            "a turn without tool calls concludes"
        );
        assert!(!continue_after_turn(20, 20, 3, false, true), "max turns");
        assert!(!continue_after_turn(1, 20, 3, true, true), "codex is one turn");
        assert!(
            !continue_after_turn(1, 20, 3, false, false),
            "issue left the active states"
        );
    }
}
