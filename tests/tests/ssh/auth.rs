//! Authentication: ed25519, ECDSA and RSA identity files, encrypted keys with the passphrase from the
//! environment, ssh-agent, and refusals named as such.

use itervox::config::{HostKeyPolicy, SshConfig};
use itervox::hosts::ssh::{AuthMethod, ConnectOptions, Passphrase, SshClient, SshError};
use itervox_tests::sshd::{KeyKind, SshAgent, SshLab};

use super::support::{PATIENCE, config};

fn with_key(lab: &SshLab, key: &std::path::Path) -> SshConfig {
    SshConfig {
        identity_file: Some(key.to_path_buf()),
        ..config(lab, HostKeyPolicy::AcceptNew)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_ecdsa_and_rsa_keys_log_in() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    for kind in [KeyKind::Ed25519, KeyKind::Ecdsa, KeyKind::Rsa] {
        let key = lab.make_key(kind, None)?;
        host.authorize(&key)?;
        let conn = SshClient::from_config(&with_key(&lab, &key.private_key))
            .connect(&host.host_spec())
            .await
            .map_err(|e| anyhow::anyhow!("{kind:?}: {e}"))?;
        assert_eq!(
            conn.auth_method(),
            &AuthMethod::IdentityFile {
                path: key.private_key.clone()
            },
            "{kind:?}"
        );
        assert!(conn.run("true", b"", PATIENCE).await?.status.success());
    }
    // OpenSSH 9.2 refuses SHA-1 `ssh-rsa` signatures by default, so the RSA login above proves the
    // client picked rsa-sha2-256/512 from the host's server-sig-algs.
    assert!(
        host.log().contains("Accepted publickey for root"),
        "sshd log:\n{}",
        host.log()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_host_does_not_know_is_an_auth_error_naming_user_host_and_key() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    let stranger = lab.make_key(KeyKind::Ed25519, None)?;
    let err = SshClient::from_config(&with_key(&lab, &stranger.private_key))
        .connect(&host.host_spec())
        .await
        .expect_err("unauthorized key");
    let SshError::Auth {
        user, tried, remaining, ..
    } = &err
    else {
        panic!("expected Auth, got {err:?}");
    };
    assert_eq!(user, "root");
    assert_eq!(tried.len(), 1);
    assert!(remaining.contains(&"publickey".to_string()), "{remaining:?}");
    let text = err.to_string();
    let want = format!(
        "authentication failed for root@127.0.0.2:{}: the host refused key {}",
        host.port(),
        stranger.private_key.display()
    );
    assert!(text.starts_with(&want), "{text}");
    assert!(!err.is_retryable());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_keys_use_the_passphrase_from_the_named_environment_variable() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    // The passphrase must come from an environment variable, and tests cannot set variables safely
    // (other threads read the environment), so the key is encrypted with the value of one that is
    // always set: HOME.
    let home = std::env::var("HOME")?;
    let key = lab.make_key(KeyKind::Ed25519, Some(&home))?;
    host.authorize(&key)?;

    let mut ssh = with_key(&lab, &key.private_key);
    ssh.identity_passphrase_env = Some("HOME".into());
    let conn = SshClient::from_config(&ssh).connect(&host.host_spec()).await?;
    assert!(conn.run("true", b"", PATIENCE).await?.status.success());

    ssh.identity_passphrase_env = Some("ITERVOX_TEST_VARIABLE_THAT_IS_NEVER_SET".into());
    let err = SshClient::from_config(&ssh)
        .connect(&host.host_spec())
        .await
        .expect_err("unset variable");
    assert!(
        matches!(&err, SshError::Key { path, .. } if path == &key.private_key),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("ITERVOX_TEST_VARIABLE_THAT_IS_NEVER_SET"),
        "{err}"
    );

    ssh.identity_passphrase_env = None;
    let err = SshClient::from_config(&ssh)
        .connect(&host.host_spec())
        .await
        .expect_err("no passphrase");
    assert!(err.to_string().contains("encrypted"), "{err}");

    let mut opts = ConnectOptions::from_config(&with_key(&lab, &key.private_key));
    opts.identity_passphrase = Some(Passphrase::new("wrong"));
    opts.identity_passphrase_env = Some("SOME_VAR".into());
    let err = SshClient::new(opts)
        .connect(&host.host_spec())
        .await
        .expect_err("wrong passphrase");
    assert!(matches!(&err, SshError::Key { .. }), "{err:?}");
    assert!(err.to_string().contains("wrong passphrase"), "{err}");

    let mut missing = with_key(&lab, &lab.dir().join("no-such-key"));
    missing.use_agent = false;
    let err = SshClient::from_config(&missing)
        .connect(&host.host_spec())
        .await
        .expect_err("missing key");
    assert!(matches!(&err, SshError::Key { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-key"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_agent_keys_log_in_and_their_refusal_is_reported() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    let agent = SshAgent::start(&lab)?;
    let stranger = lab.make_key(KeyKind::Ecdsa, None)?;
    agent.add(&stranger)?;

    let mut opts = ConnectOptions::from_config(&config(&lab, HostKeyPolicy::AcceptNew));
    opts.identity_file = None;
    opts.use_agent = true;
    opts.agent_socket = Some(agent.socket().to_path_buf());
    let err = SshClient::new(opts.clone())
        .connect(&host.host_spec())
        .await
        .expect_err("agent key unknown");
    assert!(matches!(err, SshError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("ssh-agent key"), "{err}");

    let rsa = lab.make_key(KeyKind::Rsa, None)?;
    agent.add(&rsa)?;
    host.authorize(&rsa)?;
    let conn = SshClient::new(opts.clone()).connect(&host.host_spec()).await?;
    assert!(
        matches!(conn.auth_method(), AuthMethod::Agent { key } if key.contains("ssh-rsa")),
        "{:?}",
        conn.auth_method()
    );
    assert!(conn.run("true", b"", PATIENCE).await?.status.success());

    // With the agent on but unreachable, the identity file is still tried.
    opts.agent_socket = Some(lab.dir().join("no-agent.sock"));
    opts.identity_file = Some(lab.client_key().private_key.clone());
    let conn = SshClient::new(opts).connect(&host.host_spec()).await?;
    assert!(matches!(conn.auth_method(), AuthMethod::IdentityFile { .. }));
    Ok(())
}
