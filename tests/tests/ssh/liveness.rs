//! Noticing that a host is gone: keepalives on a frozen connection, a killed sshd, and reconnecting
//! afterwards.

use std::time::Instant;

use itervox::config::{HostKeyPolicy, SshConfig};
use itervox::hosts::ssh::{SshClient, SshError};
use itervox_tests::sshd::SshLab;

use super::support::{PATIENCE, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_notice_a_frozen_connection() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    let ssh = SshClient::from_config(&SshConfig {
        keepalive_interval_ms: 1000,
        ..config(&lab, HostKeyPolicy::AcceptNew)
    });
    let conn = ssh.connect(&host.host_spec()).await?;
    let mut worker_like = conn.exec("cat").await?;
    assert!(conn.run("true", b"", PATIENCE).await?.status.success());
    assert!(!conn.is_closed());

    assert!(
        host.freeze_connections() > 0,
        "the connection has sshd processes to freeze"
    );
    let started = Instant::now();
    tokio::time::timeout(PATIENCE, conn.closed())
        .await
        .map_err(|_| anyhow::anyhow!("the frozen connection was not noticed within {PATIENCE:?}"))?;
    let noticed_after = started.elapsed();
    assert!(conn.is_closed());
    let reason = conn.disconnect_reason().unwrap_or_default();
    assert!(
        reason.contains("keepalive") || reason.contains("nothing received"),
        "{reason}"
    );
    eprintln!("frozen connection noticed after {noticed_after:?}: {reason}");

    // Channels on it end too, and new work fails with Disconnected.
    let status = tokio::time::timeout(PATIENCE, worker_like.exit.wait()).await?;
    assert_eq!(status, itervox::hosts::ssh::ExitStatus::Unknown);
    let err = conn.run("true", b"", PATIENCE).await.expect_err("closed connection");
    assert!(matches!(err, SshError::Disconnected { .. }), "{err:?}");
    assert!(err.is_retryable());

    host.thaw_connections();
    let again = ssh.connect(&host.host_spec()).await?;
    assert!(again.run("true", b"", PATIENCE).await?.status.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sshd_closes_the_connection_and_a_restarted_one_takes_new_ones() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let mut host = lab.start_host("127.0.0.2")?;
    let ssh = SshClient::from_config(&config(&lab, HostKeyPolicy::AcceptNew));
    let conn = ssh.connect(&host.host_spec()).await?;
    let closed = conn.closed_token();

    host.stop()?;
    tokio::time::timeout(PATIENCE, closed.cancelled()).await?;
    assert!(conn.disconnect_reason().is_some());
    let err = ssh.connect(&host.host_spec()).await.expect_err("sshd is down");
    assert!(matches!(err, SshError::Connect { .. }), "{err:?}");

    host.start()?;
    let conn = ssh.connect(&host.host_spec()).await?;
    assert!(conn.run("true", b"", PATIENCE).await?.status.success());
    conn.disconnect().await;
    assert!(conn.is_closed());
    assert_eq!(conn.disconnect_reason().as_deref(), Some("closed by the controller"));
    Ok(())
}
