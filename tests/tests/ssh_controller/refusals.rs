//! Hosts the controller cannot or must not use: a host whose key changed is refused, a host nobody
//! listens on is down, a host that does not accept the controller's key fails authentication; each
//! says why in `/ssh-hosts`, and the healthy host keeps taking all the work.

use std::net::TcpListener;

use itervox_tests::sshd::KeyKind;

use super::harness::{Controlled, Fleet, Setup, history};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_key_missing_host_and_wrong_key_are_reported_and_the_good_host_works() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(&["127.0.0.11", "127.0.0.12", "127.0.0.13"])?;
    let names = fleet.names();
    let (rotated, refusing, good) = (names[0].clone(), names[1].clone(), names[2].clone());
    // The second host only accepts a key the controller does not have.
    let other = fleet.lab.make_key(KeyKind::Ed25519, None)?;
    fs_err::write(
        fleet.hosts[1].dir().join("authorized_keys"),
        format!("{}\n", other.public_line),
    )?;
    // Nobody listens on this port of 127.0.0.9 (it was free a moment ago).
    let closed_port = TcpListener::bind(("127.0.0.9", 0))?.local_addr()?.port();
    let missing = format!("root@127.0.0.9:{closed_port}");
    let mut all = names.clone();
    all.push(missing.clone());

    let c = Controlled::start(&fleet.lab, &Setup::new(all, "round-robin", 0), &[]).await?;
    c.wait_all_up(&[rotated.clone(), good.clone()]).await?;

    let row = c
        .wait_host(&refusing, "down with an error", |r| {
            r["status"] == "down" && r["lastError"].is_string()
        })
        .await?;
    let error = row["lastError"].as_str().unwrap_or_default();
    assert!(
        error.contains("authentication failed for root@127.0.0.12"),
        "names authentication, user and host: {error}"
    );
    assert!(
        error.contains(&*fleet.lab.client_key().private_key.to_string_lossy()),
        "names the key that was refused: {error}"
    );

    let row = c
        .wait_host(&missing, "down with an error", |r| {
            r["status"] == "down" && r["lastError"].is_string()
        })
        .await?;
    let error = row["lastError"].as_str().unwrap_or_default();
    assert!(
        error.contains("cannot connect to") && error.contains(&format!("127.0.0.9:{closed_port}")),
        "says the host could not be reached, and which: {error}"
    );

    // The first host is reinstalled behind our back: its key changes and the controller must refuse it.
    let new_key = fleet.hosts[0].rotate_host_key()?;
    let row = c
        .wait_host(&rotated, "refused", |r| {
            r["status"] == "down" && r["lastError"].as_str().is_some_and(|e| e.contains("CHANGED"))
        })
        .await?;
    let error = row["lastError"].as_str().unwrap_or_default();
    assert!(
        error.contains("host key of") && error.contains("127.0.0.11"),
        "names the host: {error}"
    );
    assert!(
        error.contains(&*fleet.lab.known_hosts().to_string_lossy()),
        "names the known_hosts file to fix: {error}"
    );
    let known = fs_err::read_to_string(fleet.lab.known_hosts())?;
    assert!(
        !known.contains(&new_key),
        "a changed key is never written to known_hosts"
    );

    // Work goes only to the one healthy host.
    for id in ["T-1", "T-2", "T-3"] {
        c.add_issue(id, "Do the thing. [demo:sleep=2]")?;
    }
    let s = c.wait_finished(&["T-1", "T-2", "T-3"], "succeeded").await?;
    for id in ["T-1", "T-2", "T-3"] {
        let rows = history(&s, id);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(
            rows[0]["workerHost"], good,
            "{id} ran on the healthy host: {:?}",
            rows[0]
        );
    }
    let hosts = c.hosts().await?;
    for bad in [&rotated, &refusing, &missing] {
        assert_eq!(hosts[bad]["status"], "down", "{}", hosts[bad]);
        assert_eq!(hosts[bad]["running"], 0, "{}", hosts[bad]);
    }
    // The snapshot shows the same pool.
    let s = c.api.state().await?;
    let pool: Vec<&str> = s["sshHosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["host"].as_str())
        .collect();
    assert_eq!(pool.len(), 4, "{}", s["sshHosts"]);

    // The operator follows the advice (removes the stale line, records the new key): the host comes
    // back without a restart.
    let stale = format!("[127.0.0.11]:{} ", fleet.hosts[0].port());
    let kept: String = known
        .lines()
        .filter(|l| !l.starts_with(&stale))
        .map(|l| format!("{l}\n"))
        .collect();
    fs_err::write(fleet.lab.known_hosts(), kept)?;
    fleet.lab.trust(&fleet.hosts[0])?;
    let row = c.wait_host(&rotated, "up again", |r| r["status"] == "up").await?;
    assert!(row.get("lastError").is_none_or(|e| e.is_null()), "{row}");
    Ok(())
}
