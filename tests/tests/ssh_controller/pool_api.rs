//! The host-pool API against real hosts: adding a host (201, 400, 409), removing one while it runs a
//! session (cancelled and retried elsewhere) or draining it (left to finish), turning a drain into a
//! cancel, changing the dispatch strategy; every change lands in WORKFLOW.md and survives a controller
//! restart.

use std::path::Path;

use serde_json::{Value, json};

use super::harness::{Controlled, Fleet, PATIENCE, Setup, history, running};

/// Whether a session's journal on a host has recorded the session's end.
fn journal_has_exit(home: &Path, session: &str) -> bool {
    let path = home
        .join(".itervox/workspaces/.itervox/sessions")
        .join(session)
        .join("journal.jsonl");
    fs_err::read_to_string(path).is_ok_and(|t| t.contains("\"session_exit\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_added_removed_drained_and_the_pool_survives_a_restart() -> anyhow::Result<()> {
    let fleet = Fleet::start(&["127.0.0.14", "127.0.0.15", "127.0.0.16"])?;
    let names = fleet.names();
    let (a, b, added) = (names[0].clone(), names[1].clone(), names[2].clone());
    let mut c = Controlled::start(
        &fleet.lab,
        &Setup::new(vec![a.clone(), b.clone()], "round-robin", 0),
        &[],
    )
    .await?;
    c.wait_all_up(&[a.clone(), b.clone()]).await?;

    // Add the third host.
    let (status, body) = c
        .api
        .call(
            "POST",
            "/ssh-hosts",
            Some(json!({"host": added, "description": "third box"})),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body, json!({"ok": true, "host": added}));
    let row = c.wait_host(&added, "up", |r| r["status"] == "up").await?;
    assert_eq!(row["description"], "third box", "{row}");
    let (status, body) = c
        .api
        .call(
            "POST",
            "/ssh-hosts",
            Some(json!({"host": added, "description": "again"})),
        )
        .await?;
    assert_eq!(status, 409, "a duplicate is a conflict: {body}");
    for bad in ["root@127.0.0.2:notaport", "bad host name!", ""] {
        let (status, body) = c
            .api
            .call("POST", "/ssh-hosts", Some(json!({"host": bad, "description": ""})))
            .await?;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert_eq!(body["error"]["field"], "host", "{bad:?}: {body}");
    }
    let (status, body) = c
        .api
        .call(
            "POST",
            "/ssh-hosts",
            Some(json!({"host": format!(" {added} "), "description": ""})),
        )
        .await?;
    assert_eq!(status, 409, "the same host spelled with spaces is a duplicate: {body}");
    assert_eq!(c.hosts().await?.len(), 3, "refused additions change nothing");
    let (status, body) = c.api.call("DELETE", "/ssh-hosts/root@127.0.0.99:2222", None).await?;
    assert_eq!(status, 404, "removing a host that is not in the pool: {body}");
    let (status, body) = c
        .api
        .call("DELETE", &format!("/ssh-hosts/{added}?drain=maybe"), None)
        .await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(c.hosts().await?.len(), 3, "refused removals change nothing");

    // Strategy.
    let (status, body) = c
        .api
        .call(
            "PUT",
            "/settings/dispatch-strategy",
            Some(json!({"strategy": "fastest"})),
        )
        .await?;
    assert_eq!(status, 400, "{body}");
    let (status, body) = c
        .api
        .call(
            "PUT",
            "/settings/dispatch-strategy",
            Some(json!({"strategy": "least-loaded"})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true, "{body}");

    // One long session per host.
    for id in ["T-1", "T-2", "T-3"] {
        c.add_issue(id, "Take your time. [demo:sleep=30]")?;
    }
    let s = c
        .api
        .wait_state(PATIENCE, "three sessions on three hosts", |s| {
            s["running"].as_array().is_some_and(|r| r.len() == 3) && super::harness::running_per_host(s).len() == 3
        })
        .await?;
    let on = |host: &str| -> (String, String) {
        let r = s["running"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["workerHost"] == host))
            .cloned()
            .unwrap_or(Value::Null);
        (
            r["identifier"].as_str().unwrap_or_default().to_string(),
            r["sessionId"].as_str().unwrap_or_default().to_string(),
        )
    };
    let (on_a, session_a) = on(&a);
    let (on_b, _) = on(&b);

    // Drain b: its session is left to finish; it takes no new work.
    let (status, body) = c
        .api
        .call("DELETE", &format!("/ssh-hosts/{b}?drain=true"), None)
        .await?;
    assert_eq!(status, 200, "{body}");
    let row = c.wait_host(&b, "draining", |r| r["status"] == "draining").await?;
    assert_eq!(row["running"], 1, "{row}");

    // Remove a outright: its session is cancelled there and the issue starts again elsewhere (on the
    // only host still taking work).
    let (status, body) = c.api.call("DELETE", &format!("/ssh-hosts/{a}"), None).await?;
    assert_eq!(status, 200, "{body}");
    let s = c
        .api
        .wait_state(PATIENCE, "the removed host's issue to run again", |s| {
            running(s, &on_a).is_some_and(|r| r["workerHost"] == added)
        })
        .await?;
    let rows = history(&s, &on_a);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "cancelled", "{:?}", rows[0]);
    assert_eq!(rows[0]["workerHost"], a);
    assert!(
        rows[0]["error"].as_str().is_some_and(|e| e.contains("removed")),
        "{:?}",
        rows[0]
    );
    let home_a = fleet.hosts[0].home().to_path_buf();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !journal_has_exit(&home_a, &session_a) {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the agent on the removed host was not stopped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let s = c.wait_finished(&["T-1", "T-2", "T-3"], "succeeded").await?;
    let drained = history(&s, &on_b);
    assert_eq!(
        drained.len(),
        1,
        "the drained host's session finished there: {drained:?}"
    );
    assert_eq!(drained[0]["workerHost"], b);
    // Both removed hosts leave the pool once their sessions are over.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let pool: Vec<String> = c.hosts().await?.into_keys().collect();
        if pool == vec![added.clone()] {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "pool is still {pool:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // WORKFLOW.md holds the changes, prompt body intact.
    let text = fs_err::read_to_string(&c.project.workflow)?;
    assert!(!text.contains(&a) && !text.contains(&b), "{text}");
    assert!(text.contains(&added) && text.contains("third box"), "{text}");
    assert!(text.contains("dispatch_strategy: least-loaded"), "{text}");
    assert!(text.contains("Work on {{ issue.identifier }}"), "{text}");

    // And they survive a restart.
    c.controller.terminate().await?;
    c.restart().await?;
    let s = c
        .api
        .wait_state(PATIENCE, "the restarted pool", |s| {
            s["sshHosts"]
                .as_array()
                .is_some_and(|h| h.len() == 1 && h[0]["status"] == "up")
        })
        .await?;
    assert_eq!(s["sshHosts"][0]["host"], added);
    assert_eq!(s["sshHosts"][0]["description"], "third box");
    assert_eq!(s["dispatchStrategy"], "least-loaded");
    // The history still says where each run ran.
    assert_eq!(
        history(&s, &on_b).first().map(|r| r["workerHost"].clone()),
        Some(json!(b))
    );
    assert_eq!(
        history(&s, &on_a)
            .iter()
            .map(|r| r["workerHost"].clone())
            .collect::<Vec<_>>(),
        vec![json!(added), json!(a)]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_host_removed_again_without_drain_cancels_its_session() -> anyhow::Result<()> {
    let fleet = Fleet::start(&["127.0.0.19", "127.0.0.20"])?;
    let names = fleet.names();
    let c = Controlled::start(&fleet.lab, &Setup::new(names.clone(), "round-robin", 0), &[]).await?;
    c.wait_all_up(&names).await?;

    // One session long enough to outlive the test (30 s between steps).
    c.add_issue("D-1", "Take a long time. [demo:sleep=300]")?;
    let s = c
        .api
        .wait_state(PATIENCE, "the long session to start", |s| {
            running(s, "D-1").is_some_and(|r| r["sessionId"].as_str().is_some_and(|id| !id.is_empty()))
        })
        .await?;
    let row = running(&s, "D-1").cloned().unwrap_or(Value::Null);
    let host = row["workerHost"].as_str().unwrap_or_default().to_string();
    let session = row["sessionId"].as_str().unwrap_or_default().to_string();
    let other = names
        .iter()
        .find(|n| **n != host)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("D-1 runs on {host:?}, not on a lab host: {row}"))?;
    let home = fleet
        .hosts
        .iter()
        .find(|h| h.spec() == host)
        .map(|h| h.home().to_path_buf())
        .ok_or_else(|| anyhow::anyhow!("no lab host named {host}"))?;

    // Drain it: gone from WORKFLOW.md, its session left to run.
    let (status, body) = c
        .api
        .call("DELETE", &format!("/ssh-hosts/{host}?drain=true"), None)
        .await?;
    assert_eq!(status, 200, "{body}");
    let row = c.wait_host(&host, "draining", |r| r["status"] == "draining").await?;
    assert_eq!(row["running"], 1, "{row}");
    assert!(
        !fs_err::read_to_string(&c.project.workflow)?.contains(&host),
        "a drained host leaves WORKFLOW.md at once"
    );

    // Draining it again changes nothing.
    let (status, body) = c
        .api
        .call("DELETE", &format!("/ssh-hosts/{host}?drain=true"), None)
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"ok": true, "host": host, "drain": true}));
    let s = c.api.get("/state").await?;
    assert_eq!(
        running(&s, "D-1").map(|r| r["sessionId"].clone()),
        Some(json!(session)),
        "a second drain leaves the session running: {s}"
    );
    assert_eq!(c.hosts().await?[&host]["status"], "draining");

    // Removing it without drain turns the drain into a cancel: the session stops there, the issue starts
    // again on the host still in the pool, and the host leaves the pool.
    let (status, body) = c.api.call("DELETE", &format!("/ssh-hosts/{host}"), None).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"ok": true, "host": host, "drain": false}));
    let s = c
        .api
        .wait_state(PATIENCE, "the cancelled issue to run again elsewhere", |s| {
            running(s, "D-1").is_some_and(|r| r["workerHost"] == other)
        })
        .await?;
    let rows = history(&s, "D-1");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "cancelled", "{:?}", rows[0]);
    assert_eq!(rows[0]["workerHost"], host, "{:?}", rows[0]);
    assert!(
        rows[0]["error"].as_str().is_some_and(|e| e.contains("removed")),
        "{:?}",
        rows[0]
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !journal_has_exit(&home, &session) {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the agent on the drained host was not stopped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let pool: Vec<String> = c.hosts().await?.into_keys().collect();
        if pool == vec![other.clone()] {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "pool is still {pool:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Once gone, it is not in the pool any more.
    let (status, body) = c.api.call("DELETE", &format!("/ssh-hosts/{host}"), None).await?;
    assert_eq!(status, 404, "{body}");
    Ok(())
}
