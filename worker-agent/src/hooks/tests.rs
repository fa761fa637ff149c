//! Hooks run for real with `sh`: environment, output capture, failure, timeout and cancel.

use super::*;

fn ctx<'a>(dir: &'a Path, env: &'a BTreeMap<String, String>, timeout: Duration) -> HookContext<'a> {
    HookContext {
        workspace: dir,
        issue: "ITX-7",
        timeout,
        env,
        live: None,
    }
}

#[tokio::test]
async fn success_captures_stdout_and_stderr_with_the_issue_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let env = BTreeMap::from([("EXTRA".to_string(), "yes".to_string())]);
    let run = run_hook(
        HookKind::AfterCreate,
        "echo out-$ITERVOX_ISSUE_IDENTIFIER; echo err-$EXTRA >&2; pwd",
        &ctx(tmp.path(), &env, Duration::from_secs(20)),
        &CancellationToken::new(),
    )
    .await;
    assert!(run.succeeded(), "{:?}", run.result);
    assert!(run.output.contains("out-ITX-7"), "{}", run.output);
    assert!(run.output.contains("err-yes"), "{}", run.output);
    assert!(run.output.contains(&tmp.path().display().to_string()));
    let entries = run.log_entries(Utc::now());
    assert_eq!(entries.len(), 4, "three output lines and the outcome");
    assert_eq!(entries[3].level, LogLevel::Info);
}

#[tokio::test]
async fn failure_reports_the_exit_code_and_the_output_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let env = BTreeMap::new();
    let run = run_hook(
        HookKind::BeforeRun,
        "echo npm install failed >&2; exit 3",
        &ctx(tmp.path(), &env, Duration::from_secs(20)),
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(run.result, HookResult::Failed { exit_code: Some(3) });
    let msg = run.failure_message(tmp.path());
    assert!(msg.contains("before_run hook failed with exit code 3"), "{msg}");
    assert!(msg.contains("npm install failed"), "{msg}");
    assert_eq!(run.log_entries(Utc::now()).last().unwrap().level, LogLevel::Error);

    let run = run_hook(
        HookKind::AfterRun,
        "exit 1",
        &ctx(tmp.path(), &env, Duration::from_secs(20)),
        &CancellationToken::new(),
    )
    .await;
    let last = run.log_entries(Utc::now()).pop().unwrap();
    assert_eq!(last.level, LogLevel::Warn, "after_run failures are ignored");
    assert!(last.message.contains("(ignored)"));
}

#[tokio::test]
async fn timeout_kills_the_hook_and_its_children() {
    let tmp = tempfile::tempdir().unwrap();
    let env = BTreeMap::new();
    let pidfile = tmp.path().join("child.pid");
    let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
    let run = run_hook(
        HookKind::AfterCreate,
        &script,
        // Long enough for the shell to write the pid file first, even on a stalled machine.
        &ctx(tmp.path(), &env, Duration::from_secs(3)),
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(run.result, HookResult::TimedOut);
    let pid: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while crate::process_identity::ProcessIdentity::of(pid).is_some() {
        assert!(Instant::now() < deadline, "the hook's child survived the timeout");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cancel_stops_the_hook() {
    let tmp = tempfile::tempdir().unwrap();
    let env = BTreeMap::new();
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let marker = tmp.path().join("started");
    let script = format!("touch {}; sleep 300", marker.display());
    let m2 = marker.clone();
    tokio::spawn(async move {
        while !m2.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c2.cancel();
    });
    let run = run_hook(
        HookKind::BeforeRun,
        &script,
        &ctx(tmp.path(), &env, Duration::from_secs(60)),
        &cancel,
    )
    .await;
    assert_eq!(run.result, HookResult::Cancelled);
}

#[tokio::test]
async fn output_is_capped() {
    let tmp = tempfile::tempdir().unwrap();
    let env = BTreeMap::new();
    let run = run_hook(
        HookKind::AfterCreate,
        "head -c 600000 /dev/zero | tr '\\0' 'a'; echo; echo THE-END",
        &ctx(tmp.path(), &env, Duration::from_secs(20)),
        &CancellationToken::new(),
    )
    .await;
    assert!(run.succeeded());
    assert!(run.truncated);
    assert_eq!(run.output.len(), OUTPUT_CAP);
    assert!(run.tail.contains("THE-END"));
}

/// With a live channel, each output line goes out as the hook prints it (the last one even without a
/// newline), and the log entries then hold only the outcome; when nobody listens, the lines come in the
/// log entries as usual.
#[tokio::test]
async fn live_lines_go_out_as_the_hook_prints_them() {
    let tmp = tempfile::tempdir().unwrap();
    let env = BTreeMap::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let dir = tmp.path().to_path_buf();
    // The hook prints its first line, then waits for the test to open this gate.
    let gate = tmp.path().join("gate");
    let script = format!(
        "echo one; while [ ! -e '{}' ]; do sleep 0.05; done; printf 'two\\nthree'",
        gate.display()
    );
    let hook = tokio::spawn(async move {
        let env = BTreeMap::new();
        let mut c = ctx(&dir, &env, Duration::from_secs(20));
        c.live = Some(tx);
        run_hook(HookKind::AfterCreate, &script, &c, &CancellationToken::new()).await
    });
    let first = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("the first line arrives while the hook still runs")
        .unwrap();
    assert_eq!(first.message, "after_create: one");
    assert_eq!(first.detail.as_deref(), Some("{\"hook\":\"after_create\"}"));
    assert!(!hook.is_finished(), "the hook is still waiting at its gate");
    std::fs::write(&gate, "").unwrap();
    let run = hook.await.unwrap();
    assert!(run.succeeded() && run.streamed, "{run:?}");
    let mut rest = Vec::new();
    while let Ok(e) = rx.try_recv() {
        rest.push(e.message);
    }
    assert_eq!(rest, vec!["after_create: two", "after_create: three"]);
    let entries = run.log_entries(Utc::now());
    assert_eq!(entries.len(), 1, "only the outcome: {entries:?}");

    // Nobody listening: nothing is lost, the lines are in the entries.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    drop(rx);
    let mut c = ctx(tmp.path(), &env, Duration::from_secs(20));
    c.live = Some(tx);
    let run = run_hook(HookKind::AfterCreate, "echo kept", &c, &CancellationToken::new()).await;
    assert!(!run.streamed);
    let messages: Vec<String> = run.log_entries(Utc::now()).into_iter().map(|e| e.message).collect();
    assert!(messages.contains(&"after_create: kept".to_string()), "{messages:?}");
}
