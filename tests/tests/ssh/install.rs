//! Installing the worker over SSH: uploads when missing, skips when current, replaces when different,
//! honours the login PATH, and the installed worker answers `version` over the channel.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use itervox::config::HostKeyPolicy;
use itervox::hosts::install::{InstallAction, InstallError, WorkerVersion, ensure_worker, worker_command};
use itervox_tests::binaries::bin_path;
use itervox_tests::sshd::SshLab;
use sha2::{Digest, Sha256};

use super::support::{PATIENCE, client};

/// A stand-in worker: a script that answers `version` like the real one.
fn stand_in_worker(dir: &Path, name: &str, version: &WorkerVersion) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    fs_err::write(
        &path,
        format!("#!/bin/sh\n[ \"$1\" = version ] && echo '{version}'\nexit 0\n"),
    )?;
    fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

fn sha256_of(path: &Path) -> anyhow::Result<String> {
    Ok(hex::encode(Sha256::digest(fs_err::read(path)?)))
}

fn version(v: &str, protocol: u32) -> WorkerVersion {
    WorkerVersion {
        version: v.into(),
        protocol,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_when_missing_skips_when_current_replaces_when_different() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    let conn = client(&lab, HostKeyPolicy::AcceptNew)
        .connect(&host.host_spec())
        .await?;
    let current = version("7.0.0", 7);
    let local = stand_in_worker(lab.dir(), "worker-7", &current)?;
    let installed_at = host.home().join(".local/bin/itervox-worker");

    let first = ensure_worker(&conn, "itervox-worker", &local, &current).await?;
    assert_eq!(first.action, InstallAction::Installed);
    assert_eq!(first.path, installed_at.display().to_string());
    assert_eq!(sha256_of(&installed_at)?, sha256_of(&local)?);
    assert_eq!(fs_err::metadata(&installed_at)?.permissions().mode() & 0o777, 0o755);

    let second = ensure_worker(&conn, "itervox-worker", &local, &current).await?;
    assert_eq!(second.action, InstallAction::AlreadyCurrent);
    assert_eq!(second.path, first.path);

    // A newer controller brings a newer worker: the old one is replaced in place.
    let newer = version("7.1.0", 8);
    let local_newer = stand_in_worker(lab.dir(), "worker-8", &newer)?;
    let third = ensure_worker(&conn, "itervox-worker", &local_newer, &newer).await?;
    assert_eq!(
        third.action,
        InstallAction::Replaced {
            previous: current.to_string()
        }
    );
    assert_eq!(sha256_of(&installed_at)?, sha256_of(&local_newer)?);
    let out = conn
        .run(&worker_command(&third.path, &["version"]), b"", PATIENCE)
        .await?;
    assert_eq!(out.stdout_text().trim(), newer.to_string());

    // No upload leftovers next to the worker.
    let names: Vec<String> = fs_err::read_dir(installed_at.parent().expect("bin dir"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(names, vec!["itervox-worker".to_string()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_path_rules_login_path_home_relative_and_absolute() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.3")?;
    let conn = client(&lab, HostKeyPolicy::AcceptNew)
        .connect(&host.host_spec())
        .await?;
    let v = version("1.0.0", 1);
    let local = stand_in_worker(lab.dir(), "worker", &v)?;

    // A matching worker on the login shell's PATH (set by ~/.profile) is used where it is.
    let tools = host.home().join("tools");
    fs_err::create_dir_all(&tools)?;
    stand_in_worker(&tools, "itervox-worker", &v)?;
    fs_err::write(host.home().join(".profile"), "PATH=\"$HOME/tools:$PATH\"\n")?;
    let found = ensure_worker(&conn, "itervox-worker", &local, &v).await?;
    assert_eq!(found.action, InstallAction::AlreadyCurrent);
    assert_eq!(found.path, tools.join("itervox-worker").display().to_string());
    let out = conn
        .run(&worker_command("itervox-worker", &["version"]), b"", PATIENCE)
        .await?;
    assert_eq!(
        out.stdout_text().trim(),
        v.to_string(),
        "the bare name resolves through the login PATH"
    );

    // A different version on PATH is left alone; ours goes to ~/.local/bin and that path is returned.
    let other = version("1.0.1", 1);
    let local_other = stand_in_worker(lab.dir(), "worker-other", &other)?;
    let installed = ensure_worker(&conn, "itervox-worker", &local_other, &other).await?;
    assert_eq!(installed.action, InstallAction::Installed);
    assert_eq!(
        installed.path,
        host.home().join(".local/bin/itervox-worker").display().to_string()
    );
    assert_eq!(sha256_of(&tools.join("itervox-worker"))?, sha256_of(&local)?);

    // `~/…` is relative to HOME; absolute paths are used as written, folders created.
    let home_relative = ensure_worker(&conn, "~/opt/w", &local, &v).await?;
    assert_eq!(home_relative.path, host.home().join("opt/w").display().to_string());
    let absolute = host.dir().join("abs/bin/itervox worker");
    let abs = ensure_worker(&conn, &absolute.display().to_string(), &local, &v).await?;
    assert_eq!(abs.path, absolute.display().to_string());
    assert_eq!(abs.action, InstallAction::Installed);
    assert!(absolute.is_file());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_binary_that_is_not_the_matching_worker_is_reported() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.4")?;
    let conn = client(&lab, HostKeyPolicy::AcceptNew)
        .connect(&host.host_spec())
        .await?;
    let wrong = stand_in_worker(lab.dir(), "stale", &version("0.0.1", 0))?;
    let err = ensure_worker(&conn, "itervox-worker", &wrong, &version("2.0.0", 2))
        .await
        .expect_err("the uploaded binary reports another version");
    assert!(matches!(err, InstallError::StillMismatched { .. }), "{err:?}");
    assert!(err.to_string().contains("itervox-worker 0.0.1 protocol 0"), "{err}");

    let err = ensure_worker(
        &conn,
        "itervox-worker",
        &lab.dir().join("missing"),
        &version("2.0.0", 2),
    )
    .await
    .expect_err("missing local binary");
    assert!(matches!(err, InstallError::LocalBinary { .. }), "{err:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_worker_binary_installs_and_answers_version_over_the_channel() -> anyhow::Result<()> {
    let local = bin_path("itervox-worker");
    let ours = WorkerVersion::ours();
    let local_version = std::process::Command::new(&local).arg("version").output()?;
    assert_eq!(
        WorkerVersion::parse(&String::from_utf8_lossy(&local_version.stdout)),
        Some(ours.clone()),
        "{} must print `{ours}` for `version` (the worker-core part of the product)",
        local.display()
    );
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.5")?;
    let conn = client(&lab, HostKeyPolicy::AcceptNew)
        .connect(&host.host_spec())
        .await?;

    // An old worker is there; ours replaces it.
    let bin = host.home().join(".local/bin");
    fs_err::create_dir_all(&bin)?;
    stand_in_worker(&bin, "itervox-worker", &version("0.0.1", 0))?;
    let outcome = ensure_worker(&conn, "itervox-worker", &local, &ours).await?;
    assert!(matches!(outcome.action, InstallAction::Replaced { .. }), "{outcome:?}");
    assert_eq!(sha256_of(Path::new(&outcome.path))?, sha256_of(&local)?);

    let out = conn
        .run(&worker_command(&outcome.path, &["version"]), b"", PATIENCE)
        .await?;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(WorkerVersion::parse(&out.stdout_text()), Some(ours.clone()));

    let again = ensure_worker(&conn, "itervox-worker", &local, &ours).await?;
    assert_eq!(again.action, InstallAction::AlreadyCurrent);
    Ok(())
}
