//! The agent output parsers over recorded output of the real Claude Code 2.1.332 and Codex 0.171.0 CLIs
//! (in `tests/fixtures/`), and over malformed, partial and oversized lines.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use itervox_protocol::worker::Backend;
use itervox_protocol::{IssueLogEntry, LogEventKind};
use itervox_worker::agent::{AgentEvent, OutcomeStatus, TurnOutcome, TurnSummary, parser_for};
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 4, 20, 0, 0).unwrap()
}

/// Everything a parser produced for one process.
struct Run {
    entries: Vec<IssueLogEntry>,
    turns: Vec<TurnSummary>,
    outcome: TurnOutcome,
}

impl Run {
    fn count(&self, kind: LogEventKind) -> usize {
        self.entries.iter().filter(|e| e.event == kind).count()
    }

    fn of(&self, kind: LogEventKind) -> Vec<&IssueLogEntry> {
        self.entries.iter().filter(|e| e.event == kind).collect()
    }

    fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for e in &self.entries {
            *counts.entry(format!("{:?}", e.event).to_lowercase()).or_default() += 1;
        }
        counts
    }
}

fn parse_lines<'a>(backend: Backend, lines: impl IntoIterator<Item = &'a [u8]>, exit: Option<i32>) -> Run {
    let mut parser = parser_for(backend);
    let mut events = Vec::new();
    for line in lines {
        events.extend(parser.feed_line(line, now()));
    }
    let (tail, outcome) = parser.finish(exit, now());
    events.extend(tail);
    let mut run = Run {
        entries: Vec::new(),
        turns: Vec::new(),
        outcome,
    };
    for event in events {
        match event {
            AgentEvent::Log(entry) => run.entries.push(entry),
            AgentEvent::TurnEnd(turn) => run.turns.push(turn),
        }
    }
    run
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse_fixture(name: &str, backend: Backend, exit: i32) -> Run {
    let bytes = fixture(name);
    parse_lines(backend, bytes.split(|b| *b == b'\n'), Some(exit))
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn claude_bash_session() {
    let run = parse_fixture("claude-bash.jsonl", Backend::Claude, 0);
    assert_eq!(
        run.counts(),
        counts(&[("info", 1), ("text", 2), ("action", 2), ("turn", 1)])
    );
    let actions = run.of(LogEventKind::Action);
    assert_eq!(actions[0].tool.as_deref(), Some("Bash"));
    assert_eq!(actions[0].message, "echo hello > hello.txt");
    assert_eq!(actions[0].detail, None);
    let done: Value = serde_json::from_str(actions[1].detail.as_deref().unwrap()).unwrap();
    assert_eq!(done, json!({"status": "completed", "exit_code": 0, "output_size": 0}));
    assert_eq!(run.entries[0].time, "2026-12-04T20:00:00.000Z");

    let [turn] = run.turns.as_slice() else {
        panic!("{:?}", run.turns)
    };
    assert_eq!(
        (turn.input_tokens, turn.cached_input_tokens, turn.output_tokens),
        (25570, 0, 61)
    );
    assert!((turn.cost_usd.unwrap() - 0.1035).abs() < 1e-9, "{:?}", turn.cost_usd);
    assert_eq!(turn.tool_calls, 1);
    assert_eq!(turn.result_text.as_deref(), Some("Done."));
    assert!(!turn.is_error);
    assert_eq!(
        turn.agent_session_ref.as_deref(),
        Some("3fb6fe08-cca1-4df3-b3e9-c212f02d14c2")
    );

    let o = &run.outcome;
    assert_eq!(o.status, OutcomeStatus::Succeeded);
    assert_eq!(
        o.agent_session_ref.as_deref(),
        Some("3fb6fe08-cca1-4df3-b3e9-c212f02d14c2")
    );
    assert_eq!((o.input_tokens, o.output_tokens, o.turns), (25570, 61, 1));
    assert!(!o.rate_limited && o.error.is_none() && o.question.is_none());
}

#[test]
fn claude_partial_messages_are_ignored() {
    let run = parse_fixture("claude-partial.jsonl", Backend::Claude, 0);
    assert_eq!(
        run.counts(),
        counts(&[("info", 1), ("text", 2), ("action", 2), ("turn", 1)])
    );
    assert_eq!(run.outcome.status, OutcomeStatus::Succeeded);
}

#[test]
fn claude_write_is_shown_relative_to_the_worktree() {
    let run = parse_fixture("claude-edit.jsonl", Backend::Claude, 0);
    let actions = run.of(LogEventKind::Action);
    assert_eq!(actions.len(), 1, "a Write has no completion entry: {actions:?}");
    assert_eq!(
        (actions[0].tool.as_deref(), actions[0].message.as_str()),
        (Some("Write"), "notes.md")
    );
    assert_eq!(run.outcome.status, OutcomeStatus::Succeeded);
}

/// A resumed session reports session-cumulative cost and model usage; the turn must count only itself.
#[test]
fn claude_resumed_turn_counts_only_its_own_usage() {
    let run = parse_fixture("claude-resume.jsonl", Backend::Claude, 0);
    let [turn] = run.turns.as_slice() else {
        panic!("{:?}", run.turns)
    };
    assert_eq!((turn.input_tokens, turn.output_tokens), (12878, 18));
    assert_eq!(turn.cost_usd, Some(0.051872));
    assert_eq!(run.outcome.cost_usd, Some(0.051872));
    assert_eq!(
        run.outcome.agent_session_ref.as_deref(),
        Some("3fb6fe08-cca1-4df3-b3e9-c212f02d14c2")
    );
}

/// A background subagent: two init/result pairs in one process, read to the end; usage counted once.
#[test]
fn claude_background_subagent_run() {
    let run = parse_fixture("claude-task.jsonl", Backend::Claude, 0);
    assert_eq!(
        run.counts(),
        counts(&[("info", 2), ("text", 4), ("action", 2), ("subagent", 3), ("turn", 2)])
    );
    let subagents = run.of(LogEventKind::Subagent);
    assert_eq!(subagents[0].message, "Write sub.txt");
    assert_eq!(subagents[0].tool.as_deref(), Some("Agent"));
    let spawn: Value = serde_json::from_str(subagents[0].detail.as_deref().unwrap()).unwrap();
    assert_eq!(spawn["background"], true);
    assert_eq!(subagents[1].message, "Subagent started: Write sub.txt");
    assert_eq!(
        subagents[2].message,
        "Subagent completed: Subagent finished: sub.txt written."
    );
    // The subagent's own tool call is attributed to it.
    let sub_action = run.of(LogEventKind::Action)[0];
    assert_eq!(sub_action.message, "echo from-subagent > sub.txt");
    let detail: Value = serde_json::from_str(sub_action.detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["agentId"], "afa37ffca9890e806");

    assert_eq!(run.turns.len(), 2);
    let input: u64 = run.turns.iter().map(|t| t.input_tokens).sum();
    let output: u64 = run.turns.iter().map(|t| t.output_tokens).sum();
    let cost: f64 = run.turns.iter().filter_map(|t| t.cost_usd).sum();
    // The process's modelUsage: main agent, subagent and the notification turn, once each.
    assert_eq!((input, output), (54695, 145));
    assert!((cost - 0.22168).abs() < 1e-9, "{cost}");
    assert_eq!(run.turns[0].tool_calls, 2);
    assert_eq!(run.outcome.status, OutcomeStatus::Succeeded);
    assert_eq!((run.outcome.turns, run.outcome.input_tokens), (2, 54695));
}

#[test]
fn claude_foreground_subagent_run() {
    let run = parse_fixture("claude-task-fg.jsonl", Backend::Claude, 0);
    assert_eq!(run.turns.len(), 1);
    assert_eq!(run.count(LogEventKind::Subagent), 3);
    assert_eq!(run.turns[0].input_tokens, 43423);
    assert_eq!(run.outcome.status, OutcomeStatus::Succeeded);
}

#[test]
fn claude_needs_input() {
    let run = parse_fixture("claude-needs-input.jsonl", Backend::Claude, 0);
    assert_eq!(run.outcome.status, OutcomeStatus::InputRequired);
    assert_eq!(
        run.outcome.question.as_deref(),
        Some("I need a decision before I continue: should the migration target PostgreSQL or SQLite?")
    );
}

#[test]
fn claude_rate_limit_fails_rate_limited() {
    let run = parse_fixture("claude-rate-limit.jsonl", Backend::Claude, 1);
    assert_eq!(
        run.counts(),
        counts(&[("info", 1), ("warn", 2), ("error", 1), ("turn", 1)])
    );
    assert_eq!(
        run.of(LogEventKind::Warn)[0].message,
        "API error 429 (rate_limit); retry 1/2 in 1.1 s"
    );
    let o = &run.outcome;
    assert_eq!(o.status, OutcomeStatus::Failed);
    assert!(o.rate_limited);
    assert_eq!(
        o.error.as_deref(),
        Some(
            "API Error: Request rejected (429) · Number of request tokens has exceeded your per-minute rate limit (fake)"
        )
    );
    // The CLI's last retry delay (the server's retry-after) is the best the output says.
    assert_eq!(o.rate_limit_reset_at, Some(now() + Duration::milliseconds(1154)));
    assert!(run.turns[0].is_error);
}

#[test]
fn claude_overload_counts_as_rate_limited() {
    for name in ["claude-overloaded.jsonl", "claude-stream-error.jsonl"] {
        let run = parse_fixture(name, Backend::Claude, 1);
        assert_eq!(run.outcome.status, OutcomeStatus::Failed, "{name}");
        assert!(run.outcome.rate_limited, "{name}");
        assert!(
            run.outcome.error.as_deref().unwrap().starts_with("API Error: 529"),
            "{name}"
        );
        // The error is logged once, from the synthetic message.
        assert_eq!(run.count(LogEventKind::Error), 1, "{name}");
    }
}

#[test]
fn claude_flaky_run_succeeds_and_is_not_rate_limited() {
    let run = parse_fixture("claude-flaky.jsonl", Backend::Claude, 0);
    assert_eq!(run.count(LogEventKind::Warn), 4);
    assert_eq!(run.outcome.status, OutcomeStatus::Succeeded);
    assert!(!run.outcome.rate_limited);
    assert_eq!(run.outcome.rate_limit_reset_at, None);
}

#[test]
fn claude_max_turns_fails() {
    let run = parse_fixture("claude-max-turns.jsonl", Backend::Claude, 1);
    assert_eq!(run.outcome.status, OutcomeStatus::Failed);
    assert_eq!(
        run.outcome.error.as_deref(),
        Some("Reached maximum number of turns (1)")
    );
    assert!(!run.outcome.rate_limited);
    assert_eq!(
        run.of(LogEventKind::Error)[0].message,
        "Reached maximum number of turns (1)"
    );
}

#[test]
fn claude_exit_code_and_signal_decide_failure_too() {
    let run = parse_fixture("claude-bash.jsonl", Backend::Claude, 2);
    assert_eq!(run.outcome.status, OutcomeStatus::Failed);
    assert_eq!(run.outcome.error.as_deref(), Some("the agent exited with code 2"));
    let bytes = fixture("claude-bash.jsonl");
    let run = parse_lines(Backend::Claude, bytes.split(|b| *b == b'\n'), None);
    assert_eq!(run.outcome.error.as_deref(), Some("the agent was killed by a signal"));
    // No result at all, exit 0: the run did not finish.
    let first_line = bytes.split(|b| *b == b'\n').next().unwrap();
    let run = parse_lines(Backend::Claude, [first_line], Some(0));
    assert_eq!(run.outcome.status, OutcomeStatus::Failed);
    assert_eq!(
        run.outcome.error.as_deref(),
        Some("the agent exited without reporting a result")
    );
}

fn line(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn result_line(text: &str) -> Vec<u8> {
    line(json!({
        "type": "result", "subtype": "success", "is_error": false, "result": text, "session_id": "s-1",
        "total_cost_usd": 0.5, "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 3},
    }))
}

fn assistant_text(text: &str) -> Vec<u8> {
    line(json!({
        "type": "assistant", "session_id": "s-1", "parent_tool_use_id": null,
        "message": {"role": "assistant", "model": "m", "content": [{"type": "text", "text": text}]},
    }))
}

#[test]
fn malformed_partial_and_oversized_lines_never_stop_parsing() {
    let bash = fixture("claude-bash.jsonl");
    let lines: Vec<&[u8]> = bash.split(|b| *b == b'\n').collect();
    let half = &lines[1][..lines[1].len() / 2];
    let huge_user = line(json!({"type": "user", "message": {"content": "x".repeat(2 * 1024 * 1024)}}));
    let mut input: Vec<Vec<u8>> = vec![
        lines[0].to_vec(),
        b"not json at all".to_vec(),
        half.to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        b"".to_vec(),
        b"[1, 2, 3]".to_vec(),
        br#"{"type":"brand_new_kind","x":1}"#.to_vec(),
        huge_user,
    ];
    input.extend(lines[1..].iter().map(|l| l.to_vec()));
    let run = parse_lines(Backend::Claude, input.iter().map(Vec::as_slice), Some(0));
    let warns = run.of(LogEventKind::Warn);
    assert_eq!(warns.len(), 5, "{warns:#?}");
    assert_eq!(warns[0].message, "Unparsable agent output: not json at all");
    assert!(
        warns[4].message.starts_with("Skipped an oversized agent output line ("),
        "{}",
        warns[4].message
    );
    assert!(warns[4].message.ends_with("bytes, type user)"), "{}", warns[4].message);
    // Everything after the bad lines still counts.
    assert_eq!(run.count(LogEventKind::Action), 2);
    assert_eq!(run.turns.len(), 1);
    assert_eq!(run.outcome.status, OutcomeStatus::Succeeded);
}

#[test]
fn a_long_final_result_is_kept_and_a_lost_one_fails_the_turn() {
    let long = "r".repeat(3 * 1024 * 1024);
    let run = parse_lines(Backend::Claude, [result_line(&long).as_slice()], Some(0));
    assert_eq!(run.turns.len(), 1);
    assert_eq!(run.turns[0].result_text.as_deref().map(str::len), Some(long.len()));
    assert_eq!(run.outcome.status, OutcomeStatus::Succeeded);

    let too_long = "r".repeat(17 * 1024 * 1024);
    let run = parse_lines(Backend::Claude, [result_line(&too_long).as_slice()], Some(0));
    assert!(run.turns.is_empty());
    assert_eq!(run.outcome.status, OutcomeStatus::Failed);
    assert!(run.outcome.error.as_deref().unwrap().contains("larger than 16 MiB"));

    let turn = format!(
        r#"{{"type":"turn.completed","pad":"{}","usage":{{"input_tokens":5,"output_tokens":1}}}}"#,
        "p".repeat(2 * 1024 * 1024)
    );
    let run = parse_lines(Backend::Codex, [turn.as_bytes()], Some(0));
    assert_eq!(run.turns.len(), 1);
    assert_eq!(run.outcome.status, OutcomeStatus::Succeeded);
}

#[test]
fn sentinel_in_a_code_fence_is_not_a_question() {
    let text = "Here is how to ask:\n```\n<!-- itervox:needs-input -->\n```\nDone.";
    let run = parse_lines(
        Backend::Claude,
        [assistant_text(text).as_slice(), result_line(text).as_slice()],
        Some(0),
    );
    assert_eq!(run.outcome.status, OutcomeStatus::Succeeded);
    let asking = "Which port?\n<!-- itervox:needs-input -->";
    let run = parse_lines(Backend::Claude, [result_line(asking).as_slice()], Some(0));
    assert_eq!(run.outcome.status, OutcomeStatus::InputRequired);
    assert_eq!(run.outcome.question.as_deref(), Some("Which port?"));
}

#[test]
fn pull_request_urls_become_one_entry_each() {
    let url = "https://github.com/acme/app/pull/17";
    let tool_use = line(json!({
        "type": "assistant", "session_id": "s-1", "parent_tool_use_id": null,
        "message": {"content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "gh pr create"}}]},
    }));
    let tool_result = line(json!({
        "type": "user", "session_id": "s-1", "parent_tool_use_id": null,
        "message": {"content": [{"type": "tool_result", "tool_use_id": "t1", "content": url, "is_error": false}]},
        "tool_use_result": {"stdout": format!("{url}\n"), "stderr": "", "interrupted": false},
    }));
    let said = assistant_text(&format!("Opened {url}."));
    let done = result_line(&format!("Opened {url}."));
    let run = parse_lines(
        Backend::Claude,
        [
            tool_use.as_slice(),
            tool_result.as_slice(),
            said.as_slice(),
            done.as_slice(),
        ],
        Some(0),
    );
    let prs = run.of(LogEventKind::Pr);
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert_eq!(prs[0].message, url);
    assert_eq!(run.outcome.pr_url.as_deref(), Some(url));
    let action = run.of(LogEventKind::Action)[1];
    let detail: Value = serde_json::from_str(action.detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["output_size"], url.len() + 1);
    // Cached tokens are reported apart from the others.
    assert_eq!((run.turns[0].input_tokens, run.turns[0].cached_input_tokens), (10, 5));
}

#[test]
fn failed_tool_calls_are_warnings_with_the_exit_code() {
    let tool_use = line(json!({
        "type": "assistant", "session_id": "s-1",
        "message": {"content": [
            {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "cargo test"}},
            {"type": "tool_use", "id": "t2", "name": "Edit", "input": {"file_path": "/w/a.rs"}},
        ]},
    }));
    let results = line(json!({
        "type": "user", "session_id": "s-1",
        "message": {"content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "Exit code 101\nerror: test failed", "is_error": true},
            {"type": "tool_result", "tool_use_id": "t2", "content": "<tool_use_error>String to replace not found</tool_use_error>", "is_error": true},
        ]},
    }));
    let run = parse_lines(
        Backend::Claude,
        [
            tool_use.as_slice(),
            results.as_slice(),
            result_line("Tests fail.").as_slice(),
        ],
        Some(0),
    );
    let warns = run.of(LogEventKind::Warn);
    assert_eq!(warns.len(), 2);
    assert_eq!(warns[0].tool.as_deref(), Some("Bash"));
    assert_eq!(warns[0].message, "cargo test — Exit code 101");
    let detail: Value = serde_json::from_str(warns[0].detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["exit_code"], 101);
    assert_eq!(detail["status"], "failed");
    assert_eq!(warns[1].tool.as_deref(), Some("Edit"));
    assert!(warns[1].message.contains("String to replace not found"));
    assert_eq!(run.turns[0].tool_calls, 2);
}

#[test]
fn a_rejected_rate_limit_event_gives_the_vendor_reset_time() {
    let retry = line(json!({
        "type": "system", "subtype": "api_retry", "attempt": 1, "max_retries": 1,
        "retry_delay_ms": 2000, "error_status": 429, "error": "rate_limit",
    }));
    let event = line(json!({
        "type": "rate_limit_event",
        "rate_limit_info": {"status": "rejected", "resetsAt": 1_796_500_000, "rateLimitType": "five_hour", "isUsingOverage": false},
    }));
    let allowed = line(json!({
        "type": "rate_limit_event", "rate_limit_info": {"status": "allowed", "resetsAt": 1_700_000_000},
    }));
    let failed = line(json!({
        "type": "result", "subtype": "success", "is_error": true, "api_error_status": 429,
        "result": "You've hit your limit · resets 3pm (Europe/Berlin)", "session_id": "s-1",
    }));
    let run = parse_lines(
        Backend::Claude,
        [
            retry.as_slice(),
            allowed.as_slice(),
            event.as_slice(),
            failed.as_slice(),
        ],
        Some(1),
    );
    assert_eq!(run.outcome.status, OutcomeStatus::Failed);
    assert!(run.outcome.rate_limited);
    assert_eq!(
        run.outcome.rate_limit_reset_at,
        DateTime::from_timestamp(1_796_500_000, 0)
    );
    // The retry and the rejection; the accepted event is not news.
    assert_eq!(run.count(LogEventKind::Warn), 2, "{:#?}", run.entries);

    // Without the event, the zone-tagged text of the result is the next best.
    let run = parse_lines(Backend::Claude, [retry.as_slice(), failed.as_slice()], Some(1));
    assert_eq!(
        run.outcome.rate_limit_reset_at,
        Some(Utc.with_ymd_and_hms(2026, 12, 5, 14, 0, 0).unwrap())
    );
}

#[test]
fn a_denied_ask_user_question_asks_for_input() {
    let result = line(json!({
        "type": "result", "subtype": "success", "is_error": false, "result": "", "session_id": "s-1",
        "permission_denials": [{"tool_name": "AskUserQuestion", "tool_use_id": "t9",
            "tool_input": {"questions": [{"question": "Which region?", "options": []}]}}],
    }));
    let run = parse_lines(Backend::Claude, [result.as_slice()], Some(0));
    assert_eq!(run.outcome.status, OutcomeStatus::InputRequired);
    assert_eq!(run.outcome.question.as_deref(), Some("Which region?"));
}

#[test]
fn demo_backend_parses_like_claude() {
    let run = parse_fixture("claude-bash.jsonl", Backend::Demo, 0);
    assert_eq!(run.outcome.status, OutcomeStatus::Succeeded);
    assert_eq!(run.turns.len(), 1);
}

#[test]
fn codex_bash_session() {
    let run = parse_fixture("codex-bash.jsonl", Backend::Codex, 0);
    assert_eq!(
        run.counts(),
        counts(&[("info", 1), ("action", 2), ("text", 1), ("turn", 1)])
    );
    let actions = run.of(LogEventKind::Action);
    assert_eq!(
        (actions[0].tool.as_deref(), actions[0].message.as_str()),
        (Some("shell"), "echo hello > hello.txt")
    );
    let detail: Value = serde_json::from_str(actions[1].detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail, json!({"status": "completed", "exit_code": 0, "output_size": 0}));
    let [turn] = run.turns.as_slice() else { panic!() };
    assert_eq!((turn.input_tokens, turn.output_tokens, turn.tool_calls), (19227, 20, 1));
    assert_eq!(turn.cost_usd, None);
    assert_eq!(turn.result_text.as_deref(), Some("Done."));
    assert_eq!(run.outcome.status, OutcomeStatus::Succeeded);
    assert_eq!(
        run.outcome.agent_session_ref.as_deref(),
        Some("01a242a5-893f-71b2-a252-1fc24dbdacd7")
    );
}

#[test]
fn codex_failed_turn() {
    let run = parse_fixture("codex-failed.jsonl", Backend::Codex, 1);
    assert_eq!(run.outcome.status, OutcomeStatus::Failed);
    assert_eq!(
        run.outcome.error.as_deref(),
        Some("stream disconnected before completion: the fake model failed")
    );
    assert!(!run.outcome.rate_limited);
    assert_eq!(run.count(LogEventKind::Warn), 2);
    assert_eq!(run.count(LogEventKind::Error), 1);
    assert!(run.turns[0].is_error);
}

#[test]
fn codex_rate_limit() {
    let run = parse_fixture("codex-rate-limit.jsonl", Backend::Codex, 1);
    assert_eq!(run.outcome.status, OutcomeStatus::Failed);
    assert!(run.outcome.rate_limited);
    assert!(run.outcome.error.as_deref().unwrap().contains("429 Too Many Requests"));
}

#[test]
fn codex_usage_limit_with_a_retry_time() {
    let failed = line(json!({"type": "turn.failed", "error": {"message":
        "You've hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro) or try again in 2 hours 5 minutes."}}));
    let run = parse_lines(
        Backend::Codex,
        [
            br#"{"type":"thread.started","thread_id":"t-1"}"#.as_slice(),
            failed.as_slice(),
        ],
        Some(1),
    );
    assert!(run.outcome.rate_limited);
    assert_eq!(run.outcome.rate_limit_reset_at, Some(now() + Duration::minutes(125)));
}

#[test]
fn codex_needs_input() {
    let run = parse_fixture("codex-needs-input.jsonl", Backend::Codex, 0);
    assert_eq!(run.outcome.status, OutcomeStatus::InputRequired);
    assert_eq!(
        run.outcome.question.as_deref(),
        Some("Should the migration target PostgreSQL or SQLite?")
    );
}

#[test]
fn codex_items_of_every_kind() {
    let lines = [
        json!({"type": "thread.started", "thread_id": "t-1"}),
        json!({"type": "turn.started"}),
        json!({"type": "item.completed", "item": {"id": "i0", "type": "reasoning", "text": "thinking"}}),
        json!({"type": "item.started", "item": {"id": "i1", "type": "command_execution", "command": "bash -lc 'cargo test'", "status": "in_progress"}}),
        json!({"type": "item.completed", "item": {"id": "i1", "type": "command_execution", "command": "bash -lc 'cargo test'",
            "aggregated_output": "test failed\nhttps://github.com/a/b/pull/3", "exit_code": 101, "status": "failed"}}),
        json!({"type": "item.completed", "item": {"id": "i2", "type": "file_change", "status": "completed",
            "changes": [{"path": "src/lib.rs", "kind": "update"}, {"path": "NEW.md", "kind": "add"}]}}),
        json!({"type": "item.completed", "item": {"id": "i3", "type": "error", "message": "Model metadata for `x` not found"}}),
        json!({"type": "item.started", "item": {"id": "i4", "type": "mcp_tool_call", "server": "gh", "tool": "search", "arguments": {"q": "x"}, "status": "in_progress"}}),
        json!({"type": "item.completed", "item": {"id": "i4", "type": "mcp_tool_call", "server": "gh", "tool": "search", "arguments": {"q": "x"}, "status": "completed", "error": null}}),
        json!({"type": "item.completed", "item": {"id": "i5", "type": "web_search", "query": "rust regex"}}),
        json!({"type": "item.completed", "item": {"id": "i6", "type": "todo_list", "items": [{"text": "fix tests", "completed": false}, {"text": "ship", "completed": false}]}}),
        json!({"type": "item.completed", "item": {"id": "i7", "type": "collab_tool_call", "tool": "spawn_agent", "prompt": "Check the docs", "receiver_thread_ids": ["t-2"]}}),
        json!({"type": "item.completed", "item": {"id": "i8", "type": "agent_message", "text": "All done."}}),
        json!({"type": "turn.completed", "usage": {"input_tokens": 100, "cached_input_tokens": 40, "output_tokens": 7}}),
    ];
    let bytes: Vec<Vec<u8>> = lines.into_iter().map(line).collect();
    let run = parse_lines(Backend::Codex, bytes.iter().map(Vec::as_slice), Some(0));
    let warns = run.of(LogEventKind::Warn);
    assert_eq!(warns.len(), 2, "{warns:#?}");
    assert_eq!(warns[0].message, "cargo test — exit code 101");
    assert_eq!(warns[1].message, "Model metadata for `x` not found");
    let tools: Vec<(&str, &str)> = run
        .of(LogEventKind::Action)
        .iter()
        .map(|e| (e.tool.as_deref().unwrap(), e.message.as_str()))
        .collect();
    assert_eq!(
        tools,
        [
            ("shell", "cargo test"),
            ("apply_patch", "update src/lib.rs, add NEW.md"),
            ("mcp:gh/search", r#"{"q":"x"}"#),
            ("web_search", "rust regex"),
            ("todo", "fix tests (+1 more)"),
        ]
    );
    assert_eq!(run.of(LogEventKind::Subagent)[0].message, "Check the docs");
    assert_eq!(run.of(LogEventKind::Pr)[0].message, "https://github.com/a/b/pull/3");
    let [turn] = run.turns.as_slice() else { panic!() };
    assert_eq!(
        (turn.input_tokens, turn.cached_input_tokens, turn.output_tokens),
        (60, 40, 7)
    );
    assert_eq!(turn.tool_calls, 5);
    assert_eq!(run.outcome.status, OutcomeStatus::Succeeded);
    assert_eq!(run.outcome.pr_url.as_deref(), Some("https://github.com/a/b/pull/3"));
}

#[test]
fn codex_without_a_completed_turn_fails() {
    let run = parse_lines(
        Backend::Codex,
        [br#"{"type":"thread.started","thread_id":"t-1"}"#.as_slice()],
        Some(0),
    );
    assert_eq!(run.outcome.status, OutcomeStatus::Failed);
    assert_eq!(
        run.outcome.error.as_deref(),
        Some("codex exited without completing a turn")
    );
    let run = parse_lines(Backend::Codex, [b"Error: no auth".as_slice()], Some(1));
    assert_eq!(run.outcome.error.as_deref(), Some("Error: no auth"));
}
