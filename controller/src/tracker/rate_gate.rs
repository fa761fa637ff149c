//! The request budget of a remote tracker and the two rules built on it: no request at all before a
//! reported rate-limit reset, and no polling read while the budget is below the write reserve.
//!
//! Pure logic: the current time is a parameter. The adapters keep one `RateGate` behind a mutex, ask
//! it before every request and feed it every response's rate-limit headers.

use chrono::{DateTime, Duration, Utc};

use super::{RateBudget, TrackerError};

/// The longest a rate-limit signal may block requests. A reset further away than this is treated as
/// a misreading (clock skew, a header in the wrong unit) rather than honoured for hours.
const MAX_BLOCK: Duration = Duration::hours(2);

/// What kind of request is about to be sent: polling reads give way to writes when the budget runs low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// Candidate lists and refreshes, repeated every tick.
    Poll,
    /// Writes and one-off reads (an issue's detail, the lookups a write needs).
    Other,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RateGate {
    budget: Option<RateBudget>,
    blocked_until: Option<DateTime<Utc>>,
    reserve_percent: u32,
}

impl RateGate {
    pub(crate) fn new(reserve_percent: u32) -> Self {
        RateGate {
            budget: None,
            blocked_until: None,
            reserve_percent: reserve_percent.min(100),
        }
    }

    /// `Ok` when a request of this kind may be sent now; `RateLimited` (with the time to wait for)
    /// when a rate limit is in force or a polling read would eat into the write reserve.
    pub(crate) fn admit(&self, call: Call, now: DateTime<Utc>) -> Result<(), TrackerError> {
        if let Some(until) = self.blocked_until
            && until > now
        {
            return Err(TrackerError::RateLimited { reset_at: Some(until) });
        }
        if call == Call::Poll
            && self.reserve_percent > 0
            && let Some(b) = &self.budget
            && let (Some(limit), Some(remaining)) = (b.limit, b.remaining)
            && limit > 0
            && b.reset_at.is_none_or(|reset| reset > now)
            && remaining.saturating_mul(100) < limit.saturating_mul(u64::from(self.reserve_percent))
        {
            return Err(TrackerError::RateLimited { reset_at: b.reset_at });
        }
        Ok(())
    }

    /// Records what a response's rate-limit headers said; fields the response did not carry keep
    /// their last value.
    pub(crate) fn observe(&mut self, limit: Option<u64>, remaining: Option<u64>, reset_at: Option<DateTime<Utc>>) {
        if limit.is_none() && remaining.is_none() && reset_at.is_none() {
            return;
        }
        let budget = self.budget.get_or_insert_with(RateBudget::default);
        if limit.is_some() {
            budget.limit = limit;
        }
        if remaining.is_some() {
            budget.remaining = remaining;
        }
        if reset_at.is_some() {
            budget.reset_at = reset_at;
        }
    }

    /// Refuses every request until `until` (capped at two hours from `now`); returns the time the
    /// block actually ends.
    pub(crate) fn block_until(&mut self, until: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        let until = until.min(now + MAX_BLOCK);
        let until = match self.blocked_until {
            Some(existing) if existing > until => existing,
            _ => until,
        };
        self.blocked_until = Some(until);
        until
    }

    /// The last budget the tracker reported, or `None` before the first response that carried one.
    pub(crate) fn budget(&self) -> Option<RateBudget> {
        self.budget.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_block_refuses_everything_until_it_ends() {
        let mut g = RateGate::new(10);
        assert_eq!(g.block_until(t(30), t(0)), t(30));
        assert_eq!(
            g.admit(Call::Other, t(10)),
            Err(TrackerError::RateLimited { reset_at: Some(t(30)) })
        );
        assert!(g.admit(Call::Poll, t(29)).is_err());
        assert!(g.admit(Call::Other, t(30)).is_ok());
    }

    #[test]
    fn a_block_is_capped_and_never_shortened() {
        let mut g = RateGate::new(0);
        assert_eq!(g.block_until(t(100_000), t(0)), t(7200));
        assert_eq!(
            g.block_until(t(10), t(1)),
            t(7200),
            "a shorter signal keeps the longer block"
        );
    }

    #[test]
    fn polling_reads_give_way_to_the_write_reserve() {
        let mut g = RateGate::new(10);
        g.observe(Some(1000), Some(100), Some(t(60)));
        assert!(
            g.admit(Call::Poll, t(0)).is_ok(),
            "exactly at the reserve is still allowed"
        );
        g.observe(None, Some(99), None);
        assert_eq!(
            g.admit(Call::Poll, t(0)),
            Err(TrackerError::RateLimited { reset_at: Some(t(60)) })
        );
        assert!(g.admit(Call::Other, t(0)).is_ok(), "writes use the reserve");
        assert!(
            g.admit(Call::Poll, t(61)).is_ok(),
            "after the reset the budget has refilled"
        );
        assert_eq!(
            g.budget().unwrap().limit,
            Some(1000),
            "a partial update keeps the limit"
        );
    }

    #[test]
    fn zero_reserve_never_sheds_reads() {
        let mut g = RateGate::new(0);
        g.observe(Some(1000), Some(0), Some(t(60)));
        assert!(g.admit(Call::Poll, t(0)).is_ok());
    }
}
