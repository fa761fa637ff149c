//! The pure helpers: sentinel detection, rate-limit classification and reset parsing, tool summaries,
//! line decoding and pull-request URLs.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use crate::agent::json_line::{Line, MAX_LINE_BYTES, decode, mentions_type, sniff_type};
use crate::agent::pr_url::{PrTracker, find_all};
use crate::agent::rate_limit::{LimitSignal, ResetSource, is_limit_text, reset_from_epoch, reset_from_text};
use crate::agent::sentinel::question;
use crate::agent::tool_summary::{shell_command_text, summarize};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

#[test]
fn sentinel_counts_only_on_its_own_line_outside_fences() {
    let s = "<!-- itervox:needs-input -->";
    let asks = [
        (format!("Which database?\n{s}"), "Which database?"),
        (format!("Which database?\n  {s}  \n"), "Which database?"),
        (format!("{s}\nWhich database?"), "Which database?"),
        (
            format!("Example:\n```md\n{s}\n```\nReal question?\n{s}"),
            "Example:\n```md\n<!-- itervox:needs-input -->\n```\nReal question?",
        ),
        // A closed tilde fence, then the sentinel.
        (format!("~~~\ncode\n~~~\nQ?\n{s}"), "~~~\ncode\n~~~\nQ?"),
        // Indented by four spaces, backticks are not a fence.
        (format!("    ```\n{s}\n```"), "```\n```"),
    ];
    for (message, want) in &asks {
        assert_eq!(question(message).as_deref(), Some(*want), "{message:?}");
    }
    let does_not_ask = [
        "No question here.".to_string(),
        format!("Use the line `{s}` to ask."),
        format!("Inline {s} is not a line of its own"),
        format!("```\n{s}\n```"),
        format!("````\n```\n{s}\n```\n````"),
        format!("~~~\n{s}\n```\n"),
        // An unclosed fence runs to the end of the message.
        format!("```\n{s}"),
    ];
    for message in &does_not_ask {
        assert_eq!(question(message), None, "{message:?}");
    }
}

#[test]
fn classifies_limit_texts() {
    for text in [
        "API Error: Request rejected (429) · Number of request tokens has exceeded your per-minute rate limit",
        "exceeded retry limit, last status: 429 Too Many Requests, request id: x",
        "API Error: 529 Overloaded. This is a server-side issue",
        "You've hit your usage limit. Upgrade to Pro or try again at 3:04 PM.",
        "Claude AI usage limit reached|1796500000",
        "5-hour limit reached ∙ resets 3pm",
        "You've hit your session limit · resets 8:30pm (Asia/Tokyo)",
        "You've hit your weekly limit · resets Jul 25, 9pm (America/New_York)",
        "insufficient_quota: You exceeded your current quota",
        "rate_limit_error",
    ] {
        assert!(is_limit_text(text), "{text}");
    }
    for text in [
        "stream disconnected before completion: the fake model failed",
        "Reached maximum number of turns (1)",
        "read 4290 bytes",
        "Internal server error",
    ] {
        assert!(!is_limit_text(text), "{text}");
    }
}

#[test]
fn parses_reset_times() {
    let berlin = chrono_tz::Europe::Berlin;
    // 2026-12-04 10:00 UTC = 11:00 in Berlin.
    let now = utc(2026, 12, 4, 10, 0, 0);
    let cases: &[(&str, Option<DateTime<Utc>>)] = &[
        // Claude: only with a zone.
        (
            "You've hit your limit · resets 3pm (Europe/Berlin)",
            Some(utc(2026, 12, 4, 14, 0, 0)),
        ),
        ("limit reached ∙ resets 9:30am (UTC)", Some(utc(2026, 12, 5, 9, 30, 0))),
        ("resets 10am (America/New_York)", Some(utc(2026, 12, 4, 15, 0, 0))),
        (
            "You've hit your session limit · resets 8:30pm (Asia/Tokyo)",
            Some(utc(2026, 12, 4, 11, 30, 0)),
        ),
        (
            "Weekly limit reached · resets Dec 8, 5pm (Europe/Berlin)",
            Some(utc(2026, 12, 8, 16, 0, 0)),
        ),
        ("resets Jan 2 at 9am (UTC)", Some(utc(2027, 1, 2, 9, 0, 0))),
        ("5-hour limit reached ∙ resets 3pm", None),
        ("resets 3pm (Not/AZone)", None),
        ("resets 13pm (UTC)", None),
        // Legacy epoch form.
        (
            "Claude AI usage limit reached|1796500000",
            DateTime::from_timestamp(1_796_500_000, 0),
        ),
        // Codex: the host's zone (Berlin here).
        (
            "You've hit your usage limit. Try again at 3:04 PM.",
            Some(utc(2026, 12, 4, 14, 4, 0)),
        ),
        ("try again at 9:15 AM.", Some(utc(2026, 12, 5, 8, 15, 0))),
        ("try again at Dec 5th, 2026 3:04 PM.", Some(utc(2026, 12, 5, 14, 4, 0))),
        (
            "Rate limit reached. Please try again in 20s.",
            Some(utc(2026, 12, 4, 10, 0, 20)),
        ),
        ("try again in 1m30s", Some(utc(2026, 12, 4, 10, 1, 30))),
        (
            "try again in 2 days 3 hours 5 minutes",
            Some(utc(2026, 12, 6, 13, 5, 0)),
        ),
        (
            "try again in 1.5s",
            Some(DateTime::from_timestamp_millis(now.timestamp_millis() + 1500).unwrap()),
        ),
        ("try again later", None),
    ];
    for (text, want) in cases {
        assert_eq!(reset_from_text(text, now, &berlin), *want, "{text}");
    }
}

#[test]
fn reads_epoch_seconds_and_millis() {
    let at = DateTime::from_timestamp(1_771_390_800, 0);
    assert_eq!(reset_from_epoch(&json!(1_771_390_800)), at);
    assert_eq!(reset_from_epoch(&json!(1_771_390_800_000u64)), at);
    assert_eq!(reset_from_epoch(&json!("1771390800")), at);
    assert_eq!(reset_from_epoch(&json!(null)), None);
    assert_eq!(reset_from_epoch(&json!(-5)), None);
}

#[test]
fn the_best_reset_source_wins() {
    let mut limit = LimitSignal::default();
    assert!(!limit.limited);
    limit.note_reset(ResetSource::Vendor, utc(2026, 12, 4, 15, 0, 0));
    limit.note_reset(ResetSource::RetryDelay, utc(2026, 12, 4, 10, 0, 2));
    assert_eq!(limit.reset_at(), Some(utc(2026, 12, 4, 15, 0, 0)));
    limit.note_reset(ResetSource::Vendor, utc(2026, 12, 4, 16, 0, 0));
    assert_eq!(limit.reset_at(), Some(utc(2026, 12, 4, 16, 0, 0)));
    let mut limit = LimitSignal::default();
    limit.note_text("the fake model failed", utc(2026, 12, 4, 10, 0, 0));
    assert!(!limit.limited);
    limit.note_text("429 Too Many Requests", utc(2026, 12, 4, 10, 0, 0));
    assert!(limit.limited);
    assert_eq!(limit.reset_at(), None);
}

#[test]
fn summarizes_tool_calls() {
    let cwd = Some("/w/repo");
    let cases = [
        ("Read", json!({"file_path": "/w/repo/src/main.rs"}), "src/main.rs"),
        (
            "Edit",
            json!({"file_path": "/elsewhere/x.rs", "old_string": "a"}),
            "/elsewhere/x.rs",
        ),
        (
            "Write",
            json!({"file_path": "/w/repo/notes.md", "content": "x"}),
            "notes.md",
        ),
        (
            "MultiEdit",
            json!({"file_path": "/w/repo/a/b.rs", "edits": []}),
            "a/b.rs",
        ),
        ("NotebookEdit", json!({"notebook_path": "/w/repo/n.ipynb"}), "n.ipynb"),
        (
            "Bash",
            json!({"command": "cargo test --workspace", "description": "Run tests"}),
            "cargo test --workspace",
        ),
        (
            "Bash",
            json!({"command": "set -e\ncargo build\ncargo test"}),
            "set -e …",
        ),
        (
            "Grep",
            json!({"pattern": "fn main", "path": "/w/repo/src"}),
            "fn main in src",
        ),
        ("Glob", json!({"pattern": "**/*.rs"}), "**/*.rs"),
        (
            "WebFetch",
            json!({"url": "https://docs.rs/x", "prompt": "p"}),
            "https://docs.rs/x",
        ),
        ("WebSearch", json!({"query": "tokio select"}), "tokio select"),
        (
            "TodoWrite",
            json!({"todos": [{"content": "Write tests", "status": "in_progress"}, {"content": "Ship"}]}),
            "Write tests (+1 more)",
        ),
        (
            "Agent",
            json!({"description": "Write sub.txt", "prompt": "long"}),
            "Write sub.txt",
        ),
        ("Task", json!({"prompt": "only a prompt"}), "only a prompt"),
        ("exec_command", json!({"cmd": "ls -la"}), "ls -la"),
        ("shell", json!({"command": ["bash", "-lc", "make"]}), "make"),
        ("mcp__github__create_pr", json!({"title": "T"}), r#"{"title":"T"}"#),
        ("Unknown", json!({}), ""),
    ];
    for (tool, input, want) in cases {
        assert_eq!(summarize(tool, &input, cwd), want, "{tool} {input}");
    }
    let long = "x".repeat(1000);
    assert!(summarize("Bash", &json!({"command": long}), None).chars().count() <= 301);
    assert_eq!(
        shell_command_text("/bin/bash -lc 'echo hello > hello.txt'"),
        "echo hello > hello.txt"
    );
    assert_eq!(shell_command_text("bash -lc 'it'\\''s'"), "bash -lc 'it'\\''s'");
    assert_eq!(shell_command_text("git status"), "git status");
}

#[test]
fn decodes_lines() {
    assert_eq!(decode(b"", &["result"]), Line::Blank);
    assert_eq!(decode(b"  \r", &["result"]), Line::Blank);
    assert!(matches!(decode(br#"{"type":"x"}"#, &["result"]), Line::Object(m) if m["type"] == "x"));
    assert!(matches!(decode(br#"{"type":"x""#, &["result"]), Line::NotJson { text } if text == r#"{"type":"x""#));
    assert!(matches!(decode(b"[1,2]", &["result"]), Line::NotJson { .. }));
    assert!(matches!(decode(b"\xff\xfe{", &["result"]), Line::NotJson { .. }));
    assert!(matches!(
        decode(b"Reading prompt from stdin...", &["result"]),
        Line::NotJson { .. }
    ));

    let big = format!(r#"{{"type":"user","content":"{}"}}"#, "a".repeat(MAX_LINE_BYTES));
    assert_eq!(
        decode(big.as_bytes(), &["result"]),
        Line::Oversized {
            bytes: big.len(),
            kind: Some("user".into()),
            terminal: false
        }
    );
    // A terminal line is decoded even when long; its `type` may come last.
    let result = format!(r#"{{"result":"{}","type":"result"}}"#, "a".repeat(2 * MAX_LINE_BYTES));
    assert!(matches!(decode(result.as_bytes(), &["result"]), Line::Object(m) if m["type"] == "result"));
    // A nested "type":"result" does not make a long line terminal.
    let nested = format!(
        r#"{{"type":"user","x":{{"type":"result"}},"y":"{}"}}"#,
        "a".repeat(MAX_LINE_BYTES)
    );
    assert!(matches!(
        decode(nested.as_bytes(), &["result"]),
        Line::Oversized { kind: Some(k), .. } if k == "user"
    ));

    assert_eq!(
        sniff_type(br#"{"a":1, "type" : "turn.completed"}"#).as_deref(),
        Some("turn.completed")
    );
    assert!(mentions_type(br#"{"x":{"type":"text"},"type":"result"}"#, "result"));
    assert!(!mentions_type(br#"{"text":"\"type\":\"result\""}"#, "result"));
}

#[test]
fn finds_pull_request_urls_once() {
    let text = "Opened https://github.com/acme/app/pull/42. See also https://gitlab.com/g/sub/p/-/merge_requests/7 \
                and https://bitbucket.org/o/r/pull-requests/3, https://ghe.corp:8443/team/repo/pull/9 \
                but not https://github.com/acme/app/issues/5 or https://github.com/acme/app/pulls";
    assert_eq!(
        find_all(text),
        [
            "https://github.com/acme/app/pull/42",
            "https://gitlab.com/g/sub/p/-/merge_requests/7",
            "https://bitbucket.org/o/r/pull-requests/3",
            "https://ghe.corp:8443/team/repo/pull/9",
        ]
    );
    let mut prs = PrTracker::default();
    assert_eq!(
        prs.new_urls("https://github.com/a/b/pull/1"),
        ["https://github.com/a/b/pull/1"]
    );
    assert!(prs.new_urls("again https://github.com/a/b/pull/1").is_empty());
    assert_eq!(prs.last(), Some("https://github.com/a/b/pull/1"));
}
