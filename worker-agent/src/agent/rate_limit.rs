//! Rate-limit and overload classification of an agent's errors, and the time a vendor said the limit
//! resets: from structured fields (Claude `rate_limit_event.resetsAt`, an `api_retry` delay) or from
//! error text (Claude "resets 3pm (Europe/Berlin)" — only with a zone —, Codex "try again at 3:04 PM",
//! which Codex prints in this host's zone, and "try again in 5m").

use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use regex::{Captures, Regex};
use serde_json::Value;

static LIMIT_TEXT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)rate[ _-]?limit|too many requests|\b(?:429|529)\b|usage[ _]limit|insufficient_quota|quota exceeded|exceeded your current quota|overloaded|hit your (?:[a-z-]+ )?limit|limit reached",
    )
    .expect("static regex")
});

const MONTH: &str = r"(?P<mon>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?";

static CLAUDE_RESET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\bresets\s+(?:at\s+)?(?:on\s+)?(?:{MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?:at\s+)?)?(?P<h>\d{{1,2}})(?::(?P<m>\d{{2}}))?\s*(?P<ap>am|pm)?\s*\((?P<tz>[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*)\)"
    ))
    .expect("static regex")
});

static LEGACY_EPOCH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)limit reached\|(\d{9,13})").expect("static regex"));

static TRY_AGAIN_AT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)try again at\s+(?:{MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?:(?P<year>\d{{4}})\s+)?(?:at\s+)?)?(?P<h>\d{{1,2}}):(?P<m>\d{{2}})\s*(?P<ap>am|pm)?"
    ))
    .expect("static regex")
});

static TRY_AGAIN_IN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)try again in\s+((?:\d+(?:\.\d+)?\s*[a-z]+[\s,]*(?:and\s+)?)+)").expect("static regex")
});

static DURATION_PART: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(\d+(?:\.\d+)?)\s*(milliseconds?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)")
        .expect("static regex")
});

/// True when an error text reads like a rate limit, a quota or an overload.
pub fn is_limit_text(text: &str) -> bool {
    LIMIT_TEXT.is_match(text)
}

/// True for HTTP statuses that mean "rate limited", "out of quota" or "overloaded".
pub fn is_limit_status(status: i64) -> bool {
    matches!(status, 429 | 529 | 402)
}

/// A Unix time in seconds or milliseconds (a number or a numeric string).
pub fn reset_from_epoch(value: &Value) -> Option<DateTime<Utc>> {
    let n = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if !n.is_finite() || n <= 0.0 {
        return None;
    }
    // Seconds until the year 5138; anything larger is milliseconds.
    let millis = if n >= 1e11 { n } else { n * 1000.0 };
    DateTime::from_timestamp_millis(millis as i64)
}

fn month_number(name: &str) -> Option<u32> {
    let key = name.get(..3)?.to_ascii_lowercase();
    let months = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    months.iter().position(|m| *m == key).map(|i| i as u32 + 1)
}

/// Hour of day from `h` and an optional am/pm marker.
fn hour_of(h: u32, ampm: Option<&str>) -> Option<u32> {
    match ampm.map(str::to_ascii_lowercase).as_deref() {
        None => (h <= 23).then_some(h),
        Some(ap) if (1..=12).contains(&h) => Some(h % 12 + if ap == "pm" { 12 } else { 0 }),
        Some(_) => None,
    }
}

/// The instant of `naive` in `tz` (the earlier one when ambiguous, an hour later inside a DST gap).
fn instant<Tz: TimeZone>(tz: &Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        LocalResult::None => tz
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
    }
}

/// The next instant, in `tz`, matching the wall-clock time (and date, when given) of `caps`.
fn wall_clock_reset<Tz: TimeZone>(caps: &Captures<'_>, now: DateTime<Utc>, tz: &Tz) -> Option<DateTime<Utc>> {
    let h: u32 = caps.name("h")?.as_str().parse().ok()?;
    let m: u32 = caps.name("m").map_or(Some(0), |m| m.as_str().parse().ok())?;
    let hour = hour_of(h, caps.name("ap").map(|a| a.as_str()))?;
    let today = now.with_timezone(tz).date_naive();
    let time = chrono::NaiveTime::from_hms_opt(hour, m, 0)?;
    match (caps.name("mon"), caps.name("day")) {
        (Some(mon), Some(day)) => {
            let month = month_number(mon.as_str())?;
            let day: u32 = day.as_str().parse().ok()?;
            let explicit_year = caps.name("year").and_then(|y| y.as_str().parse::<i32>().ok());
            let year = explicit_year.unwrap_or(today.year());
            let at = instant(tz, NaiveDate::from_ymd_opt(year, month, day)?.and_time(time))?;
            if explicit_year.is_none() && at < now - Duration::days(1) {
                // "Jan 2" read on Dec 31 means next year.
                instant(tz, NaiveDate::from_ymd_opt(year + 1, month, day)?.and_time(time))
            } else {
                Some(at)
            }
        }
        _ => {
            let at = instant(tz, today.and_time(time))?;
            if at <= now {
                instant(tz, (today + Duration::days(1)).and_time(time))
            } else {
                Some(at)
            }
        }
    }
}

/// The length of "5m", "1m30s", "2 days 3 hours 5 minutes", "1.5s".
fn parse_duration(text: &str) -> Option<Duration> {
    let mut total_ms = 0f64;
    let mut any = false;
    for part in DURATION_PART.captures_iter(text) {
        let n: f64 = part[1].parse().ok()?;
        let unit = part[2].to_ascii_lowercase();
        let ms = match unit.as_str() {
            "ms" | "millisecond" | "milliseconds" => 1.0,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000.0,
            "d" | "day" | "days" => 86_400_000.0,
            _ => continue,
        };
        total_ms += n * ms;
        any = true;
    }
    (any && total_ms.is_finite()).then(|| Duration::milliseconds(total_ms.round() as i64))
}

/// The reset time an error text announces, if any. `local` is the zone of this host, in which Codex
/// prints "try again at" times; Claude's "resets …" counts only when it names its zone.
pub fn reset_from_text<Tz: TimeZone>(text: &str, now: DateTime<Utc>, local: &Tz) -> Option<DateTime<Utc>> {
    if let Some(caps) = CLAUDE_RESET.captures(text)
        && let Ok(tz) = caps["tz"].parse::<chrono_tz::Tz>()
        && let Some(at) = wall_clock_reset(&caps, now, &tz)
    {
        return Some(at);
    }
    if let Some(caps) = LEGACY_EPOCH.captures(text)
        && let Some(at) = reset_from_epoch(&Value::String(caps[1].to_string()))
    {
        return Some(at);
    }
    if let Some(caps) = TRY_AGAIN_AT.captures(text)
        && let Some(at) = wall_clock_reset(&caps, now, local)
    {
        return Some(at);
    }
    if let Some(caps) = TRY_AGAIN_IN.captures(text)
        && let Some(d) = parse_duration(&caps[1])
    {
        return Some(now + d);
    }
    None
}

/// How trustworthy a reset time is; a better source replaces a worse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResetSource {
    /// The CLI's retry delay (the server's `retry-after`).
    RetryDelay,
    /// Parsed from an error message.
    Text,
    /// A structured vendor field (`resetsAt`).
    Vendor,
}

/// What a run said about rate limits so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitSignal {
    /// A rate limit, quota or overload was reported.
    pub limited: bool,
    reset: Option<(ResetSource, DateTime<Utc>)>,
}

impl LimitSignal {
    /// Records a limit without a reset time.
    pub fn note(&mut self) {
        self.limited = true;
    }

    /// Records a limit that resets at `at`; the best source wins, the later report among equals.
    pub fn note_reset(&mut self, source: ResetSource, at: DateTime<Utc>) {
        self.limited = true;
        if self.reset.is_none_or(|(s, _)| s <= source) {
            self.reset = Some((source, at));
        }
    }

    /// Records whatever `text` says, when it reads like a limit: the limit, and its reset time.
    pub fn note_text(&mut self, text: &str, now: DateTime<Utc>) {
        if !is_limit_text(text) {
            return;
        }
        match reset_from_text(text, now, &chrono::Local) {
            Some(at) => self.note_reset(ResetSource::Text, at),
            None => self.note(),
        }
    }

    /// When the limit resets, if the vendor said.
    pub fn reset_at(&self) -> Option<DateTime<Utc>> {
        self.reset.map(|(_, at)| at)
    }
}
