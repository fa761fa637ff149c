//! Agent sessions through the real binary: replay and follow, exactly-once across a killed serve
//! process, cancel of the whole process group, timeouts, the next turn with resume, a supervisor killed
//! with SIGKILL, and removal.
//!
//! The test agents print Claude Code stream-json; the assertions hold for any parser that turns an
//! assistant text into one log entry (the interim parser turns every line into one).

use itervox_worker::process_group::signal_process;
use itervox_worker::process_identity::ProcessIdentity;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::harness::*;

fn setup(issue: &str) -> (Host, Worker, String) {
    let host = Host::new();
    let (mut w, _) = Worker::ready(&host);
    let ws = prepare(&mut w, &host, issue);
    (host, w, ws)
}

fn attach(w: &mut Worker, session: &str, from: u64) -> u64 {
    let answer = w.ok(json!({"type": "attach", "sessionId": session, "fromSeq": from}));
    answer["lastSeq"].as_u64().unwrap()
}

fn wait_marker(w: &mut Worker, session: &str, marker: &str) {
    let (s, m) = (session.to_string(), marker.to_string());
    let found = w.wait_frame(&format!("{marker} from {session}"), move |v| {
        v["type"] == "log" && v["sessionId"] == s && v["entry"]["message"].as_str().unwrap_or("").contains(&m)
    });
    w.seen.push(found);
}

fn wait_gone(what: &str, pid: u32) {
    wait_until(what, || ProcessIdentity::of(pid).is_none());
}

#[test]
fn attach_from_one_gets_every_event_in_order_and_a_second_stream_gets_the_rest() {
    let (host, mut w, ws) = setup("ITX-1");
    let agent = host.agent(
        "a",
        "init\nsay MARK-ONE\nsay MARK-TWO\necho 'a line that is not json'\nsay MARK-THREE\nresult done",
    );
    let started = w.ok(start_request("s-a", "ITX-1", &ws, &agent));
    assert_eq!(started["turn"], 1);
    assert!(started["pid"].as_u64().unwrap() > 1);
    attach(&mut w, "s-a", 1);
    let exit = w.wait_exit("s-a", 1);
    let events = w.events("s-a");
    assert_contiguous(&events, 1);
    assert_eq!(events.last(), Some(&exit), "session_exit is the last event");
    for marker in ["MARK-ONE", "MARK-TWO", "MARK-THREE"] {
        assert_eq!(
            entries_with(&events, marker),
            1,
            "{marker} in exactly one entry: {events:#?}"
        );
    }
    assert_eq!(exit["status"], "succeeded", "{exit}");
    assert_eq!(exit["exitCode"], 0);
    assert_eq!(exit["branch"], "itervox/ITX-1");
    for e in events.iter().filter(|e| e["type"] == "log") {
        assert_eq!(e["entry"]["seq"], e["seq"]);
        assert_eq!(e["entry"]["sessionId"], "s-a");
    }
    assert_eq!(events, host.journal("s-a"), "the stream is the journal");

    let env = host.agent_record("a", "env", 1).unwrap();
    for var in [
        "ITERVOX_AGENT=1",
        "ITERVOX_SESSION_ID=s-a",
        "ITERVOX_ISSUE_IDENTIFIER=ITX-1",
        "ITERVOX_TURN=1",
        "FROM_CONTROLLER=yes",
    ] {
        assert!(
            env.lines().any(|l| l == var),
            "{var} missing from the agent's environment"
        );
    }
    assert_eq!(host.agent_record("a", "prompt", 1).unwrap(), "work on ITX-1");

    let (mut w2, hello) = Worker::ready(&host);
    let listed = &hello["sessions"][0];
    assert_eq!(listed["sessionId"], "s-a");
    assert_eq!(listed["status"], "exited");
    assert_eq!(listed["lastSeq"], events.len());
    let mut exit_record = exit.clone();
    exit_record.as_object_mut().unwrap().remove("type");
    assert_eq!(listed["exit"], exit_record);
    assert_eq!(attach(&mut w2, "s-a", 3), events.len() as u64);
    let rest_len = events.len() - 2;
    wait_until("the replay from seq 3", || w2.events("s-a").len() >= rest_len);
    assert_eq!(w2.events("s-a"), events[2..].to_vec());
}

#[test]
fn killing_the_serve_process_mid_turn_loses_nothing_and_duplicates_nothing() {
    let (host, mut w, ws) = setup("ITX-2");
    let agent = host.agent(
        "b",
        "init\ni=1\nwhile [ $i -le 12 ]; do say MARK-$i-END; sleep 0.2; i=$((i+1)); done\nresult done",
    );
    w.ok(start_request("s-b", "ITX-2", &ws, &agent));
    attach(&mut w, "s-b", 1);
    wait_marker(&mut w, "s-b", "MARK-3-END");
    w.kill9();
    let mut collected = w.events("s-b");
    let last = collected.last().unwrap()["seq"].as_u64().unwrap();

    let (mut w2, hello) = Worker::ready(&host);
    assert_eq!(hello["sessions"][0]["sessionId"], "s-b");
    attach(&mut w2, "s-b", last + 1);
    let exit = w2.wait_exit("s-b", 1);
    collected.extend(w2.events("s-b"));
    assert_contiguous(&collected, 1);
    for i in 1..=12 {
        assert_eq!(
            entries_with(&collected, &format!("MARK-{i}-END")),
            1,
            "MARK-{i} exactly once"
        );
    }
    assert_eq!(exit["status"], "succeeded", "{exit}");
    assert_eq!(collected, host.journal("s-b"));
}

#[test]
fn the_end_of_stdin_ends_serve_but_not_the_session() {
    let (host, mut w, ws) = setup("ITX-3");
    let gate = host.scratch("gate");
    let agent = host.agent(
        "c",
        &format!(
            "init\nsay MARK-BEFORE\n{}\nsay MARK-AFTER\nresult done",
            wait_for_gate(&gate)
        ),
    );
    w.ok(start_request("s-c", "ITX-3", &ws, &agent));
    attach(&mut w, "s-c", 1);
    wait_marker(&mut w, "s-c", "MARK-BEFORE");
    assert!(w.close().success(), "serve exits 0 at the end of stdin");
    assert_eq!(host.state("s-c").status, itervox_worker::session::Phase::Running);
    std::fs::write(&gate, "").unwrap();

    let (mut w2, _) = Worker::ready(&host);
    attach(&mut w2, "s-c", 1);
    let exit = w2.wait_exit("s-c", 1);
    assert_eq!(exit["status"], "succeeded");
    assert_eq!(entries_with(&w2.events("s-c"), "MARK-AFTER"), 1);
}

#[test]
fn cancel_kills_the_whole_process_group() {
    let (host, mut w, ws) = setup("ITX-4");
    let pidfile = host.scratch("sleep.pid");
    let agent = host.agent(
        "d",
        &format!(
            "init\nsay MARK-START\nsleep 300 &\necho $! > {}\nwait",
            pidfile.display()
        ),
    );
    w.ok(start_request("s-d", "ITX-4", &ws, &agent));
    attach(&mut w, "s-d", 1);
    wait_marker(&mut w, "s-d", "MARK-START");
    wait_until("the grandchild's pid", || read_pid(&pidfile).is_some());
    let grandchild = read_pid(&pidfile).unwrap();
    let agent_pid = host.state("s-d").pid.expect("the agent's pid is recorded");

    let answer = w.ok(json!({"type": "cancel", "sessionId": "s-d", "graceMs": 2000}));
    assert_eq!(answer["cancelled"], true);
    let exit = w.wait_exit("s-d", 1);
    assert_eq!(exit["status"], "cancelled", "{exit}");
    wait_gone("the grandchild sleep", grandchild);
    wait_gone("the agent", agent_pid);
    let state = host.state("s-d");
    assert!(state.agent.is_none() && state.pid.is_none());

    let again = w.ok(json!({"type": "cancel", "sessionId": "s-d"}));
    assert_eq!(again["cancelled"], false, "nothing runs any more");
}

#[test]
fn cancel_escalates_to_sigkill_for_an_agent_that_ignores_sigterm() {
    let (host, mut w, ws) = setup("ITX-5");
    let agent = host.agent(
        "e",
        "trap '' TERM\ninit\nsay MARK-STUBBORN\nwhile :; do sleep 0.1; done",
    );
    w.ok(start_request("s-e", "ITX-5", &ws, &agent));
    attach(&mut w, "s-e", 1);
    wait_marker(&mut w, "s-e", "MARK-STUBBORN");
    let agent_pid = host.state("s-e").pid.unwrap();
    w.ok(json!({"type": "cancel", "sessionId": "s-e", "graceMs": 300}));
    let exit = w.wait_exit("s-e", 1);
    assert_eq!(exit["status"], "cancelled");
    assert!(exit.get("exitCode").is_none(), "killed by a signal: {exit}");
    wait_gone("the stubborn agent", agent_pid);
}

#[test]
fn the_read_timeout_stops_a_silent_agent() {
    let (host, mut w, ws) = setup("ITX-6");
    let pidfile = host.scratch("sleep.pid");
    let agent = host.agent(
        "f",
        &format!(
            "init\nsay MARK-THEN-SILENCE\nsleep 300 &\necho $! > {}\nwait",
            pidfile.display()
        ),
    );
    let mut req = start_request("s-f", "ITX-6", &ws, &agent);
    req["readTimeoutMs"] = json!(1500);
    w.ok(req);
    attach(&mut w, "s-f", 1);
    let exit = w.wait_exit("s-f", 1);
    assert_eq!(exit["status"], "timed_out", "{exit}");
    assert!(exit["error"].as_str().unwrap().contains("read timeout"), "{exit}");
    assert_eq!(entries_with(&w.events("s-f"), "MARK-THEN-SILENCE"), 1);
    wait_gone("the agent's grandchild", read_pid(&pidfile).unwrap());
}

#[test]
fn the_read_timeout_spares_an_agent_that_keeps_talking() {
    let (host, mut w, ws) = setup("ITX-6B");
    // Silent for 0.4 s at a time, 4.8 s in all: past the 4 s read timeout, never silent that long (the
    // margin lets a stalled test machine delay a line by more than a second).
    let agent = host.agent(
        "f2",
        "init\nfor i in 1 2 3 4 5 6 7 8 9 10 11 12; do say MARK-STILL-HERE; sleep 0.4; done\nresult done",
    );
    let mut req = start_request("s-f2", "ITX-6B", &ws, &agent);
    req["readTimeoutMs"] = json!(4000);
    w.ok(req);
    attach(&mut w, "s-f2", 1);
    let exit = w.wait_exit("s-f2", 1);
    assert_eq!(exit["status"], "succeeded", "{exit}");
    assert_eq!(entries_with(&w.events("s-f2"), "MARK-STILL-HERE"), 12);
}

#[test]
fn the_turn_timeout_stops_a_chatty_agent() {
    let (host, mut w, ws) = setup("ITX-7");
    let agent = host.agent("g", "init\nwhile :; do say MARK-CHATTER; sleep 0.2; done");
    let mut req = start_request("s-g", "ITX-7", &ws, &agent);
    req["readTimeoutMs"] = json!(60000);
    req["turnTimeoutMs"] = json!(1500);
    w.ok(req);
    attach(&mut w, "s-g", 1);
    let exit = w.wait_exit("s-g", 1);
    assert_eq!(exit["status"], "timed_out", "{exit}");
    assert!(exit["error"].as_str().unwrap().contains("turn timeout"), "{exit}");
    assert_contiguous(&w.events("s-g"), 1);
}

#[test]
fn send_input_runs_the_next_turn_resuming_the_agent_session() {
    let (host, mut w, ws) = setup("ITX-8");
    // Each turn waits at a gate the test opens once it has tried to send input too early.
    let gate = host.scratch("turn-gate");
    let agent = host.agent(
        "h",
        &format!("init\nsay MARK-TURN-$T\n{}\nresult done-$T", wait_for_gate(&gate)),
    );
    let mut req = start_request("s-h", "ITX-8", &ws, &agent);
    req["resumeSessionRef"] = json!("sess-initial");
    w.ok(req);
    let busy = w.request(json!({"type": "send_input", "sessionId": "s-h", "message": "too early"}));
    assert_eq!(busy["code"], "session_running", "{busy}");
    std::fs::write(&gate, "").unwrap();
    attach(&mut w, "s-h", 1);
    let first = w.wait_exit("s-h", 1);
    assert_eq!(first["status"], "succeeded");

    let started = w.ok(json!({"type": "send_input", "sessionId": "s-h", "message": "the answer is 42"}));
    assert_eq!(started["turn"], 2);
    let second = w.wait_exit("s-h", 2);
    assert_eq!(second["status"], "succeeded");
    let events = w.events("s-h");
    assert_contiguous(&events, 1);
    assert_eq!(events.iter().filter(|e| e["type"] == "session_exit").count(), 2);
    assert_eq!(entries_with(&events, "MARK-TURN-1"), 1);
    assert_eq!(entries_with(&events, "MARK-TURN-2"), 1);

    let args1 = host.agent_record("h", "args", 1).unwrap();
    assert!(args1.contains("--resume\nsess-initial\n"), "{args1}");
    // Turn 2 resumes the agent session the agent reported in turn 1 (when the parser reports one),
    // else the one turn 1 resumed.
    let reported = events
        .iter()
        .rev()
        .filter(|e| e["type"] == "turn" && e["turn"] == 1)
        .find_map(|e| e["agentSessionRef"].as_str())
        .unwrap_or("sess-initial")
        .to_string();
    let args2 = host.agent_record("h", "args", 2).unwrap();
    assert!(
        args2.contains(&format!("--resume\n{reported}\n")),
        "want {reported}: {args2}"
    );
    assert_eq!(host.agent_record("h", "prompt", 2).unwrap(), "the answer is 42");
    assert!(
        host.agent_record("h", "env", 2)
            .unwrap()
            .lines()
            .any(|l| l == "ITERVOX_TURN=2")
    );
    let list = w.ok(json!({"type": "list_sessions"}));
    assert_eq!(list["sessions"][0]["turn"], 2);
    assert_eq!(list["sessions"][0]["exit"]["turn"], 2);
}

#[test]
fn a_supervisor_killed_with_sigkill_is_reported_failed_exactly_once() {
    let (host, mut w, ws) = setup("ITX-9");
    let pidfile = host.scratch("sleep.pid");
    let agent = host.agent(
        "i",
        &format!(
            "init\nsay MARK-ALIVE\nsleep 300 &\necho $! > {}\nwait",
            pidfile.display()
        ),
    );
    w.ok(start_request("s-i", "ITX-9", &ws, &agent));
    attach(&mut w, "s-i", 1);
    wait_marker(&mut w, "s-i", "MARK-ALIVE");
    wait_until("the grandchild's pid", || read_pid(&pidfile).is_some());
    let supervisor = host.state("s-i").supervisor.expect("the supervisor is recorded");
    assert!(signal_process(supervisor.pid, Signal::SIGKILL).unwrap());
    wait_until("the supervisor to die", || !supervisor.is_alive());

    // Two serve processes look at the session at the same time.
    let mut a = Worker::start(&host);
    let mut b = Worker::start(&host);
    for x in [&mut a, &mut b] {
        x.send(&json!({"type": "hello", "protocol": 1, "controllerVersion": "test", "workspaceRoot": host.root_str()}));
    }
    let lists: Vec<Value> = [&mut a, &mut b]
        .into_iter()
        .map(|x| {
            x.wait_frame("hello", |v| v["type"] == "hello");
            x.ok(json!({"type": "list_sessions"}))
        })
        .collect();
    for list in &lists {
        let s = &list["sessions"][0];
        assert_eq!(s["status"], "exited", "{list}");
        assert_eq!(s["exit"]["status"], "failed");
        assert!(s["exit"]["error"].as_str().unwrap().contains("supervisor"), "{s}");
    }
    let journal = host.journal("s-i");
    assert_eq!(
        journal.iter().filter(|e| e["type"] == "session_exit").count(),
        1,
        "{journal:#?}"
    );
    assert_contiguous(&journal, 1);
    // The follower on the first stream delivers the failure too.
    let exit = w.wait_exit("s-i", 1);
    assert_eq!(exit["status"], "failed");
    wait_gone("the orphaned agent's grandchild", read_pid(&pidfile).unwrap());
}

#[test]
fn sessions_and_their_workspaces_are_only_removed_when_not_running() {
    let (host, mut w, ws) = setup("ITX-10");
    let gate = host.scratch("gate");
    let agent = host.agent("j", &format!("init\n{}\nresult done", wait_for_gate(&gate)));
    let mut req = start_request("s-j", "ITX-10", &ws, &agent);
    req["hooks"] = json!({"afterRun": "sleep 1; echo done-after-run", "timeoutMs": 60000});
    w.ok(req);
    let err = w.request(json!({"type": "remove_session", "sessionId": "s-j"}));
    assert_eq!(err["code"], "session_running");
    let err = w.request(json!({"type": "remove_workspace", "issue": "ITX-10"}));
    assert_eq!(err["code"], "session_running", "{err}");
    let pong = w.ok(json!({"type": "ping"}));
    assert_eq!(pong["running"], 1);

    let dup = w.request(start_request("s-j", "ITX-10", &ws, &agent));
    assert_eq!(dup["code"], "session_exists");
    let outside = w.request(start_request(
        "s-x",
        "ITX-10",
        &host.tmp.path().display().to_string(),
        &agent,
    ));
    assert_eq!(outside["code"], "bad_request", "{outside}");
    let bad_id = w.request(start_request("../s", "ITX-10", &ws, &agent));
    assert_eq!(bad_id["code"], "bad_request");

    std::fs::write(&gate, "").unwrap();
    attach(&mut w, "s-j", 1);
    w.wait_exit("s-j", 1);
    // after_run is still running in the worktree: removal waits for it instead of pulling the folder
    // from under it.
    let removed = w.ok(json!({"type": "remove_workspace", "issue": "ITX-10"}));
    assert_eq!(removed["removed"], true);
    assert!(
        host.journal("s-j")
            .iter()
            .any(|e| e["entry"]["message"].as_str().unwrap_or("").contains("done-after-run")),
        "after_run finished before the worktree went"
    );
    w.ok(json!({"type": "remove_session", "sessionId": "s-j"}));
    assert!(!host.session_dir("s-j").exists());
    let gone = w.request(json!({"type": "remove_session", "sessionId": "s-j"}));
    assert_eq!(gone["code"], "unknown_session");
    assert_eq!(w.ok(json!({"type": "list_sessions"}))["sessions"], json!([]));
}

#[test]
fn input_required_comes_right_before_session_exit() {
    let (host, mut w, ws) = setup("ITX-11");
    let agent = host.agent(
        "k",
        "init\nsay 'Should the migration target PostgreSQL or SQLite?\\n<!-- itervox:needs-input -->'\nresult 'Should the migration target PostgreSQL or SQLite?\\n<!-- itervox:needs-input -->'",
    );
    w.ok(start_request("s-k", "ITX-11", &ws, &agent));
    attach(&mut w, "s-k", 1);
    let exit = w.wait_exit("s-k", 1);
    let events = w.events("s-k");
    assert_contiguous(&events, 1);
    // A parser that detects the sentinel makes this turn input_required; the interim one cannot.
    if let Some(i) = events.iter().position(|e| e["type"] == "input_required") {
        assert_eq!(events[i + 1], exit, "input_required is followed by session_exit");
        assert_eq!(exit["status"], "input_required");
        assert!(events[i]["context"].as_str().unwrap().contains("PostgreSQL"));
    } else {
        assert_eq!(exit["status"], "succeeded");
    }
}

#[test]
fn the_demo_backend_runs_this_worker_binary() {
    let (host, mut w, ws) = setup("ITX-12");
    let mut req = start_request("s-demo", "ITX-12", &ws, std::path::Path::new(""));
    req["backend"] = json!("demo");
    req["command"] = json!("");
    req["prompt"] = json!("Demo task for ITX-12 [demo:sleep=0]");
    w.ok(req);
    attach(&mut w, "s-demo", 1);
    let exit = w.wait_exit("s-demo", 1);
    assert_contiguous(&w.events("s-demo"), 1);
    // The agent process really ran (an exit code, not a spawn failure).
    assert!(exit["exitCode"].is_i64(), "{exit}");
    drop(host);
}

#[test]
fn one_stream_follows_several_sessions_until_each_is_detached() {
    let (host, mut w, ws1) = setup("ITX-13");
    let ws2 = prepare(&mut w, &host, "ITX-14");
    let gate = host.scratch("gate");
    let body = format!(
        "init\nsay MARK-FIRST-$ITERVOX_SESSION_ID\n{}\nsay MARK-LAST-$ITERVOX_SESSION_ID\nresult done",
        wait_for_gate(&gate)
    );
    let agent = host.agent("m", &body);
    w.ok(start_request("s-m1", "ITX-13", &ws1, &agent));
    w.ok(start_request("s-m2", "ITX-14", &ws2, &agent));
    attach(&mut w, "s-m1", 1);
    attach(&mut w, "s-m2", 1);
    wait_marker(&mut w, "s-m1", "MARK-FIRST-s-m1");
    wait_marker(&mut w, "s-m2", "MARK-FIRST-s-m2");
    w.ok(json!({"type": "detach", "sessionId": "s-m2"}));
    let before = w.events("s-m2").len();
    std::fs::write(&gate, "").unwrap();
    w.wait_exit("s-m1", 1);
    // s-m2 finishes too (its journal says so), but this stream no longer follows it.
    wait_until("s-m2 to finish", || {
        host.journal("s-m2").iter().any(|e| e["type"] == "session_exit")
    });
    let ping = w.ok(json!({"type": "ping"}));
    assert_eq!(ping["type"], "ok");
    assert_eq!(w.events("s-m2").len(), before, "no events after detach");
    assert_contiguous(&w.events("s-m1"), 1);
    assert_eq!(entries_with(&w.events("s-m1"), "MARK-LAST-s-m1"), 1);
}

#[test]
fn pings_echoing_lease_tokens_keep_a_leased_session_and_without_them_it_stops_itself() {
    let host = Host::new();
    let (mut w, hello) = Worker::ready(&host);
    let mut token = hello["leaseToken"].clone();
    assert!(token.as_u64().is_some(), "the hello hands out a lease token: {hello}");
    let ws = prepare(&mut w, &host, "ITX-L");
    let pidfile = host.scratch("leased-sleep.pid");
    let agent = host.agent(
        "leased",
        &format!(
            "init\nsay MARK-LEASED\nsleep 300 &\necho $! > {}\nwait",
            pidfile.display()
        ),
    );
    let mut start = start_request("s-l", "ITX-L", &ws, &agent);
    // Long enough that the start, the marker and a pause of the machine fit in the first lease.
    start["leaseMs"] = json!(5000);
    w.ok(start);
    attach(&mut w, "s-l", 1);
    wait_marker(&mut w, "s-l", "MARK-LEASED");
    wait_until("the grandchild's pid", || read_pid(&pidfile).is_some());
    let grandchild = read_pid(&pidfile).unwrap();
    let agent_pid = host.state("s-l").pid.expect("the agent's pid is recorded");

    // Longer than the lease, with pings that echo the last token: the session keeps running.
    let until = std::time::Instant::now() + std::time::Duration::from_millis(6000);
    while std::time::Instant::now() < until {
        let pong = w.ok(json!({"type": "ping", "leaseToken": token}));
        token = pong["leaseToken"].clone();
        assert!(token.as_u64().is_some(), "every pong hands out a token: {pong}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        ProcessIdentity::of(agent_pid).is_some(),
        "the renewed session still runs"
    );
    assert!(w.events("s-l").iter().all(|e| e["type"] != "session_exit"));

    // Pings without a token renew nothing: the supervisor gives the session up on its own.
    for _ in 0..3 {
        w.ok(json!({"type": "ping"}));
    }
    let exit = w.wait_exit("s-l", 1);
    assert_eq!(exit["status"], "cancelled", "{exit}");
    assert!(exit["error"].as_str().unwrap_or("").contains("lease expired"), "{exit}");
    wait_gone("the agent", agent_pid);
    wait_gone("the grandchild sleep", grandchild);
}
