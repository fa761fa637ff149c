//! How the worker writes times on the wire and on disk: RFC 3339 in UTC with a `Z` and milliseconds.

use chrono::{DateTime, SecondsFormat, Utc};

/// `2026-12-04T10:00:00.123Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_with_z_and_millis() {
        let t = DateTime::parse_from_rfc3339("2026-12-04T10:00:00.123456+00:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(rfc3339(t), "2026-12-04T10:00:00.123Z");
    }
}
