//! Connecting, running commands, streaming over exec channels, several channels at once, and failing
//! fast when nothing listens.

use std::time::{Duration, Instant};

use futures::future::join_all;
use itervox::config::HostKeyPolicy;
use itervox::hosts::host_spec::HostSpec;
use itervox::hosts::ssh::{ExitStatus, SshError};
use itervox_tests::sshd::SshLab;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::support::{PATIENCE, client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_commands_with_per_host_home_and_exit_codes() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    let other = lab.start_host("127.0.0.3")?;
    let ssh = client(&lab, HostKeyPolicy::AcceptNew);
    let conn = ssh.connect(&host.host_spec()).await?;
    assert_eq!(conn.user(), "root");

    let out = conn.run("echo \"$HOME\"; echo oops >&2; exit 3", b"", PATIENCE).await?;
    assert_eq!(out.status, ExitStatus::Code(3));
    assert_eq!(out.stdout_text().trim(), host.home().display().to_string());
    assert_eq!(out.stderr_text().trim(), "oops");

    let out = conn.run("tr a-z A-Z", b"hello over stdin\n", PATIENCE).await?;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout_text(), "HELLO OVER STDIN\n");

    let out = conn.run("kill -TERM $$", b"", PATIENCE).await?;
    assert_eq!(
        out.status,
        ExitStatus::Signal {
            signal: "TERM".into(),
            core_dumped: false
        }
    );

    // The second host has its own HOME, so workspaces under ~ do not collide.
    let other_conn = ssh.connect(&other.host_spec()).await?;
    let out = other_conn.run("echo \"$HOME\"", b"", PATIENCE).await?;
    assert_eq!(out.stdout_text().trim(), other.home().display().to_string());
    assert_ne!(host.home(), other.home());

    let latency = conn.latency(PATIENCE).await?;
    assert!(latency < PATIENCE);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_channels_stream_lines_both_ways_and_report_exit() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    let conn = client(&lab, HostKeyPolicy::AcceptNew)
        .connect(&host.host_spec())
        .await?;

    // A line-by-line echo server, like `itervox-worker serve --stdio`.
    let mut echo = conn
        .exec("echo ready >&2; while IFS= read -r line; do echo \"got:$line\"; done; echo bye >&2; exit 7")
        .await?;
    assert_eq!(echo.stderr.next_line().await.as_deref(), Some("ready"));
    let mut lines = BufReader::new(echo.stdout).lines();
    for i in 0..100 {
        echo.stdin.write_all(format!("{{\"n\":{i}}}\n").as_bytes()).await?;
        let line = tokio::time::timeout(PATIENCE, lines.next_line()).await??;
        assert_eq!(line.as_deref(), Some(format!("got:{{\"n\":{i}}}").as_str()));
    }
    // A big line crosses many SSH packets and still arrives whole.
    let big = "x".repeat(300_000);
    echo.stdin.write_all(format!("{big}\n").as_bytes()).await?;
    let line = tokio::time::timeout(PATIENCE, lines.next_line()).await??;
    assert_eq!(line.map(|l| l.len()), Some(big.len() + 4));

    echo.stdin.shutdown().await?; // EOF ends the loop
    assert_eq!(tokio::time::timeout(PATIENCE, lines.next_line()).await??, None);
    assert_eq!(echo.stderr.next_line().await.as_deref(), Some("bye"));
    assert_eq!(
        tokio::time::timeout(PATIENCE, echo.exit.wait()).await?,
        ExitStatus::Code(7)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_channels_run_at_once_on_one_connection() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    let conn = client(&lab, HostKeyPolicy::AcceptNew)
        .connect(&host.host_spec())
        .await?;

    // Channel A blocks on its stdin; channels opened after it must still complete meanwhile.
    let mut waiting = conn.exec("read -r line; echo \"a:$line\"").await?;
    let results = join_all((0..6).map(|i| {
        let conn = conn.clone();
        async move { conn.run(&format!("echo {i}; echo $PPID; echo $$"), b"", PATIENCE).await }
    }))
    .await;
    let mut sshds = std::collections::HashSet::new();
    let mut shells = std::collections::HashSet::new();
    for (i, r) in results.into_iter().enumerate() {
        let out = r?;
        let text = out.stdout_text();
        let mut parts = text.lines();
        assert_eq!(parts.next(), Some(i.to_string().as_str()));
        sshds.insert(parts.next().map(str::to_string));
        shells.insert(parts.next().map(str::to_string));
    }
    // One sshd connection process served every channel, each with its own shell.
    assert_eq!(sshds.len(), 1, "{sshds:?}");
    assert_eq!(shells.len(), 6, "{shells:?}");
    assert!(waiting.exit.get().is_none(), "channel A is still waiting for input");

    waiting.stdin.write_all(b"unblocked\n").await?;
    let mut out = String::new();
    tokio::time::timeout(PATIENCE, waiting.stdout.read_to_string(&mut out)).await??;
    assert_eq!(out, "a:unblocked\n");
    assert_eq!(waiting.exit.wait().await, ExitStatus::Code(0));

    // Dropping every part of a channel closes it on the host: the remote `cat` ends.
    let marker = host.dir().join("cat-ended");
    let cat = conn.exec(&format!("cat; touch {}", marker.display())).await?;
    drop(cat);
    let deadline = Instant::now() + PATIENCE;
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "the remote command did not see its channel close"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Writing to a command that has exited fails instead of hanging.
    let mut gone = conn.exec("exit 0").await?;
    assert_eq!(gone.exit.wait().await, ExitStatus::Code(0));
    let chunk = vec![b'z'; 64 * 1024];
    let write_all = async {
        loop {
            gone.stdin.write_all(&chunk).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    };
    let err = tokio::time::timeout(PATIENCE, write_all)
        .await?
        .expect_err("writes must fail");
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_a_quick_connect_error() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let ssh = client(&lab, HostKeyPolicy::AcceptNew);
    let spec = HostSpec::parse("root@127.0.0.250:22")?;
    let started = Instant::now();
    let err = ssh.connect(&spec).await.expect_err("nothing listens on 127.0.0.250");
    assert!(matches!(&err, SshError::Connect { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("root@127.0.0.250") && text.contains("refused"), "{text}");
    assert!(err.is_retryable());
    // Refused at once rather than after the 20 s connect timeout.
    assert!(started.elapsed() < PATIENCE, "took {:?}", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_over_its_time_limit_is_a_timeout_and_the_connection_stays_usable() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    let conn = client(&lab, HostKeyPolicy::AcceptNew)
        .connect(&host.host_spec())
        .await?;
    let err = conn
        .run("sleep 30", b"", Duration::from_millis(500))
        .await
        .expect_err("sleep outlives the limit");
    assert!(matches!(&err, SshError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("running `sleep 30` on"), "{err}");
    assert!(conn.run("true", b"", PATIENCE).await?.status.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_beyond_max_sessions_are_refused_by_name() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?; // MaxSessions 10, OpenSSH's default
    let conn = client(&lab, HostKeyPolicy::AcceptNew)
        .connect(&host.host_spec())
        .await?;
    let mut open = Vec::new();
    for _ in 0..10 {
        open.push(conn.exec("cat").await?);
    }
    let err = conn.exec("cat").await.expect_err("an 11th channel");
    assert!(matches!(&err, SshError::Channel { .. }), "{err:?}");
    assert!(err.to_string().contains("MaxSessions"), "{err}");
    // Closing one (by dropping it) ends it here at once and frees a slot on the host.
    let first = open.remove(0);
    let mut exit = first.exit.clone();
    drop(first);
    assert_eq!(tokio::time::timeout(PATIENCE, exit.wait()).await?, ExitStatus::Unknown);
    let mut second = open.remove(0);
    second.control.close();
    assert_eq!(
        tokio::time::timeout(PATIENCE, second.exit.wait()).await?,
        ExitStatus::Unknown
    );
    let mut rest = String::new();
    second.stdout.read_to_string(&mut rest).await?;
    assert_eq!(rest, "", "stdout ends after close");
    let deadline = Instant::now() + PATIENCE;
    loop {
        match conn.exec("cat").await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("slot not free yet: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
