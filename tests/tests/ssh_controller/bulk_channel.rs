//! Sublog reads on an SSH host go over their own worker stream: a second exec channel on the link's
//! existing SSH connection (never a second connection), opened on the first read and reused after,
//! while the session on the main stream keeps streaming and finishes normally.

use super::harness::{Controlled, Fleet, PATIENCE, Setup, running};

/// How many exec sessions and how many logins sshd has logged so far.
fn counts(log: &str) -> (usize, usize) {
    (
        log.matches("Starting session: command").count(),
        log.matches("Accepted publickey for root").count(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sublog_reads_use_a_second_exec_channel_on_the_same_ssh_connection() -> anyhow::Result<()> {
    let fleet = Fleet::start(&["127.0.0.19"])?;
    let names = fleet.names();
    let host = &fleet.hosts[0];
    // With an uploaded worker, the bulk stream reuses the main stream's checked install (no new checks).
    let setup = Setup {
        install_worker: true,
        ..Setup::new(names.clone(), "round-robin", 0)
    };
    let c = Controlled::start(&fleet.lab, &setup, &[]).await?;
    c.wait_all_up(&names).await?;
    c.add_issue("T-1", "Keep going for a while. [demo:sleep=15]")?;
    c.api
        .wait_state(PATIENCE, "T-1 running with a session", |s| {
            running(s, "T-1").is_some_and(|r| r["sessionId"].as_str().is_some_and(|x| !x.is_empty()))
        })
        .await?;

    let (execs_before, logins_before) = counts(&host.log());
    assert_eq!(logins_before, 1, "one SSH connection per host:\n{}", host.log());
    let first = c.api.get("/issues/T-1/sublogs").await?;
    assert!(first.is_array(), "{first}");
    let (execs_after, logins_after) = counts(&host.log());
    assert_eq!(
        execs_after,
        execs_before + 1,
        "the first sublog read opens one more exec channel:\n{}",
        host.log()
    );
    assert_eq!(logins_after, 1, "on the same SSH connection:\n{}", host.log());

    // The bulk stream stays open for the next read (idle close is 60 s).
    let second = c.api.get("/issues/T-1/sublogs").await?;
    assert!(second.is_array(), "{second}");
    assert_eq!(counts(&host.log()), (execs_after, 1), "{}", host.log());

    // The session on the main stream was not disturbed.
    c.wait_finished(&["T-1"], "succeeded").await?;
    let logs = c.logs("T-1").await?;
    assert!(!logs.is_empty(), "the session's events reached the controller");
    Ok(())
}
