//! Text for people in a terminal cell grid: short durations and counts, times of day, and strings
//! made safe (no control characters) and fitted to a column width.

use chrono::{DateTime, FixedOffset, Utc};
use ratatui::text::Span;

/// `45s`, `4m02s`, `1h05m`, `3d04h`.
pub fn duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `950`, `12.3k`, `4.5M`, `1.2G`.
pub fn count(n: u64) -> String {
    match n {
        0..1000 => n.to_string(),
        1000..999_950 => format!("{:.1}k", n as f64 / 1e3),
        999_950..999_950_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

/// Parses an RFC 3339 time from the API.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// `HH:MM:SS` of an RFC 3339 time in the viewer's zone; the raw text when it does not parse.
pub fn clock(s: &str, zone: FixedOffset) -> String {
    match parse_time(s) {
        Some(t) => t.with_timezone(&zone).format("%H:%M:%S").to_string(),
        None => single_line(s),
    }
}

/// One line of plain text: control characters (which a terminal would execute: escape sequences,
/// carriage returns, bells) become spaces, runs of whitespace collapse, ends are trimmed.
pub fn single_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_control() || c.is_whitespace() {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    out
}

/// Display width of a string in terminal columns.
pub fn width(s: &str) -> usize {
    Span::raw(s).width()
}

/// Cuts `s` to at most `max` columns, ending with `…` when something was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    let mut buf = [0u8; 4];
    for c in s.chars() {
        let w = width(c.encode_utf8(&mut buf));
        if used + w > max - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// `s` truncated and padded with spaces to exactly `columns` columns (left-aligned).
pub fn fit(s: &str, columns: usize) -> String {
    let mut out = truncate(s, columns);
    let w = width(&out);
    out.extend(std::iter::repeat_n(' ', columns.saturating_sub(w)));
    out
}

/// `s` truncated and right-aligned in exactly `columns` columns.
pub fn fit_right(s: &str, columns: usize) -> String {
    let cut = truncate(s, columns);
    let w = width(&cut);
    format!("{}{cut}", " ".repeat(columns.saturating_sub(w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_ms(0), "0s");
        assert_eq!(duration_ms(45_900), "45s");
        assert_eq!(duration_ms(242_000), "4m02s");
        assert_eq!(duration_ms(3_900_000), "1h05m");
        assert_eq!(duration_ms(273_600_000), "3d04h");
    }

    #[test]
    fn counts_are_short() {
        assert_eq!(count(950), "950");
        assert_eq!(count(12_345), "12.3k");
        assert_eq!(count(999_999), "1.0M");
        assert_eq!(count(4_500_000), "4.5M");
        assert_eq!(count(1_200_000_000), "1.2G");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(single_line("a\x1b[2Jb\r\nc\t d\u{7}\u{9b}e"), "a [2Jb c d e");
        assert_eq!(single_line("  padded  "), "padded");
    }

    #[test]
    fn fitting_respects_display_width() {
        assert_eq!(truncate("hello world", 8), "hello w…");
        assert_eq!(truncate("short", 8), "short");
        assert_eq!(truncate("abc", 0), "");
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(fit_right("ab", 4), "  ab");
        assert_eq!(fit("日本語テキスト", 7), "日本語…");
        assert_eq!(width(&fit("日本語テキスト", 7)), 7);
    }

    #[test]
    fn clock_uses_the_viewers_zone() {
        let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(clock("2026-12-04T10:00:05Z", plus2), "12:00:05");
        assert_eq!(clock("not a time", plus2), "not a time");
    }
}
