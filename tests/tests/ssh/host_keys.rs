//! Host key policies against known_hosts: `yes`, `accept-new`, `no`, changed and revoked keys, hashed
//! names and `[host]:port` entries written by OpenSSH's own tools.

use std::process::Command;

use anyhow::Context;
use itervox::config::HostKeyPolicy;
use itervox::hosts::ssh::{HostKeyTrust, SshError};
use itervox_tests::sshd::SshLab;

use super::support::{PATIENCE, client};

/// The SHA256 fingerprint `ssh-keygen -lf` prints for the host's public key.
fn keygen_fingerprint(host: &itervox_tests::sshd::SshHost) -> anyhow::Result<String> {
    let pubfile = host.dir().join("ssh_host_ed25519_key.pub");
    let out = Command::new("ssh-keygen").arg("-lf").arg(&pubfile).output()?;
    let text = String::from_utf8(out.stdout)?;
    text.split_whitespace()
        .nth(1)
        .map(str::to_string)
        .context("ssh-keygen -lf output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_refuses_an_unknown_host_naming_its_fingerprint() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    let err = client(&lab, HostKeyPolicy::Yes)
        .connect(&host.host_spec())
        .await
        .expect_err("unknown host in strict mode");
    let SshError::HostKeyUnknown {
        host: name,
        fingerprint,
        known_hosts,
    } = &err
    else {
        panic!("expected HostKeyUnknown, got {err:?}");
    };
    assert_eq!(name, &host.spec());
    assert_eq!(fingerprint, &keygen_fingerprint(&host)?);
    assert_eq!(known_hosts, lab.known_hosts());
    let text = err.to_string();
    assert!(
        text.contains(&host.spec()) && text.contains(fingerprint.as_str()),
        "{text}"
    );
    assert!(!err.is_retryable());
    assert!(!lab.known_hosts().exists(), "strict mode must not write known_hosts");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_new_records_the_key_then_trusts_it() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    let conn = client(&lab, HostKeyPolicy::AcceptNew)
        .connect(&host.host_spec())
        .await?;
    assert_eq!(conn.host_key().trust, HostKeyTrust::Learned);
    assert_eq!(conn.host_key().fingerprint, keygen_fingerprint(&host)?);
    let recorded = fs_err::read_to_string(lab.known_hosts())?;
    assert_eq!(recorded, format!("{}\n", host.known_hosts_line()));

    // OpenSSH's own client accepts the file we wrote.
    let out = Command::new("ssh-keygen")
        .arg("-F")
        .arg(format!("[{}]:{}", host.addr(), host.port()))
        .arg("-f")
        .arg(lab.known_hosts())
        .output()?;
    assert!(out.status.success(), "ssh-keygen -F did not find the entry");

    let again = client(&lab, HostKeyPolicy::AcceptNew)
        .connect(&host.host_spec())
        .await?;
    assert_eq!(again.host_key().trust, HostKeyTrust::Known { line: 1 });
    let strict = client(&lab, HostKeyPolicy::Yes).connect(&host.host_spec()).await?;
    assert_eq!(strict.host_key().trust, HostKeyTrust::Known { line: 1 });
    assert_eq!(
        fs_err::read_to_string(lab.known_hosts())?,
        recorded,
        "nothing appended twice"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_key_is_refused_naming_file_and_line_unless_checking_is_off() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let mut host = lab.start_host("127.0.0.2")?;
    fs_err::write(
        lab.known_hosts(),
        "# first line is a comment\nelsewhere.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBqGzomrvjGuUNq6HsOVfwfxjCHw3IrTY5YbHdHMI8Bd\n",
    )?;
    lab.trust(&host)?; // line 3
    client(&lab, HostKeyPolicy::Yes).connect(&host.host_spec()).await?;

    host.rotate_host_key()?;
    for policy in [HostKeyPolicy::Yes, HostKeyPolicy::AcceptNew] {
        let err = client(&lab, policy)
            .connect(&host.host_spec())
            .await
            .expect_err("changed key");
        let SshError::HostKeyChanged {
            known_hosts,
            line,
            fingerprint,
            ..
        } = &err
        else {
            panic!("expected HostKeyChanged with {policy:?}, got {err:?}");
        };
        assert_eq!(known_hosts, lab.known_hosts());
        assert_eq!(*line, 3);
        assert_eq!(fingerprint, &keygen_fingerprint(&host)?);
        let text = err.to_string();
        assert!(text.contains(&format!("{}:3", lab.known_hosts().display())), "{text}");
        assert!(text.contains("CHANGED"), "{text}");
    }
    let before = fs_err::read_to_string(lab.known_hosts())?;

    let unchecked = client(&lab, HostKeyPolicy::No).connect(&host.host_spec()).await?;
    assert_eq!(unchecked.host_key().trust, HostKeyTrust::Unchecked);
    assert!(unchecked.run("true", b"", PATIENCE).await?.status.success());
    assert_eq!(
        fs_err::read_to_string(lab.known_hosts())?,
        before,
        "`no` writes nothing"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_tabbed_and_patterned_entries_are_understood() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    let other = lab.start_host("127.0.0.3")?;

    // A file hashed by `ssh-keygen -H`, as Debian's HashKnownHosts writes them.
    lab.trust(&host)?;
    let out = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(lab.known_hosts())
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hashed = fs_err::read_to_string(lab.known_hosts())?;
    assert!(hashed.starts_with("|1|"), "{hashed}");
    let conn = client(&lab, HostKeyPolicy::Yes).connect(&host.host_spec()).await?;
    assert_eq!(conn.host_key().trust, HostKeyTrust::Known { line: 1 });

    // Tabs between fields and a comma-separated pattern list naming `[addr]:port`.
    let line = format!(
        "other.example,[{}]:{}\t{}\tsome comment\n",
        other.addr(),
        other.port(),
        other.host_public_key().replace(' ', "\t")
    );
    let mut text = hashed.clone();
    text.push_str(&line);
    fs_err::write(lab.known_hosts(), text)?;
    let conn = client(&lab, HostKeyPolicy::Yes).connect(&other.host_spec()).await?;
    assert_eq!(conn.host_key().trust, HostKeyTrust::Known { line: 2 });

    // The same key listed for port 22 only does not vouch for another port.
    fs_err::write(
        lab.known_hosts(),
        format!("{} {}\n", other.addr(), other.host_public_key()),
    )?;
    let err = client(&lab, HostKeyPolicy::Yes)
        .connect(&other.host_spec())
        .await
        .expect_err("port 22 entry");
    assert!(matches!(err, SshError::HostKeyUnknown { .. }), "{err:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_even_with_accept_new() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    fs_err::write(lab.known_hosts(), format!("@revoked * {}\n", host.host_public_key()))?;
    let err = client(&lab, HostKeyPolicy::AcceptNew)
        .connect(&host.host_spec())
        .await
        .expect_err("revoked");
    assert!(matches!(err, SshError::HostKeyRevoked { line: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("@revoked"), "{err}");
    Ok(())
}
