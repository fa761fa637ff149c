//! A failed attempt is retried after the backoff: `[demo:fail-once]` shows in `retrying` with attempt 2
//! and a due time about 10 s out, then succeeds.

use chrono::{DateTime, Utc};
use itervox_tests::controller::snap;
use itervox_tests::project::IssueSpec;

use crate::{Setup, s};

#[tokio::test]
async fn a_failed_attempt_is_retried_after_the_backoff_and_succeeds() {
    // Taken before the controller starts: it may dispatch and fail before `start` returns.
    let started = Utc::now();
    let t = Setup::start(
        &[IssueSpec::new("R-1", "Todo", "Flaky. [demo:fail-once] [demo:sleep=1]")],
        &[],
    )
    .await;

    let st = t.wait("R-1 retrying", |s| snap::retrying(s, "R-1").is_some()).await;
    let seen = Utc::now();
    let row = snap::retrying(&st, "R-1").unwrap();
    assert_eq!(row["attempt"], 2, "{row}");
    assert!(snap::running(&st, "R-1").is_none(), "not running while waiting: {st:#}");
    assert!(!s(row, "error").is_empty(), "the retry says why: {row}");
    let due: DateTime<Utc> = s(row, "dueAt").parse().expect("dueAt is RFC 3339");
    // The first backoff is 10 s after the failure, which happened between `started` and `seen`.
    let low = started + chrono::Duration::seconds(9);
    let high = seen + chrono::Duration::seconds(11);
    assert!(low <= due && due <= high, "dueAt {due} within [{low}, {high}]");
    assert_eq!(st["counts"]["retrying"], 1);
    let hist = snap::history(&st, "R-1");
    assert_eq!(hist.len(), 1, "{hist:#?}");
    assert_eq!(s(hist[0], "status"), "failed", "{:#}", hist[0]);
    assert!(!s(hist[0], "error").is_empty(), "{:#}", hist[0]);

    let st = t
        .wait("R-1 succeeded on the retry", |s| {
            snap::history(s, "R-1")
                .first()
                .is_some_and(|h| h["status"] == "succeeded")
        })
        .await;
    let hist = snap::history(&st, "R-1");
    // The retry did not start before it was due (slack for millisecond rounding).
    let retry_start: DateTime<Utc> = s(hist[0], "startedAt").parse().expect("startedAt is RFC 3339");
    assert!(
        retry_start >= due - chrono::Duration::milliseconds(100),
        "{retry_start} >= {due}"
    );
    let statuses: Vec<&str> = hist.iter().map(|h| s(h, "status")).collect();
    assert_eq!(statuses, ["succeeded", "failed"], "newest first: {hist:#?}");
    assert_eq!(hist[0]["attempt"], 2);
    assert_eq!(hist[1]["attempt"], 1);
    assert_ne!(hist[0]["sessionId"], hist[1]["sessionId"], "a retry is a new session");
    assert!(snap::retrying(&st, "R-1").is_none());
    t.wait_tracker_state("R-1", "Done").await;
}
