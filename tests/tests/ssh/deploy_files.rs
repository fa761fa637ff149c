//! The deploy files: `install-worker.sh` (shellcheck-clean, installs, is idempotent, refuses wrong
//! binaries) and `itervox.service` (the settings the README promises; `systemd-analyze verify` when
//! systemd's tools are installed).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use itervox_tests::binaries::bin_path;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn install_worker(args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new("bash")
        .arg(repo_root().join("deploy/install-worker.sh"))
        .args(args)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()?)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn deploy_scripts_pass_shellcheck() -> anyhow::Result<()> {
    let scripts: Vec<PathBuf> = fs_err::read_dir(repo_root().join("deploy"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    assert!(!scripts.is_empty());
    let out = Command::new("shellcheck")
        .args(&scripts)
        .output()
        .map_err(|e| anyhow::anyhow!("shellcheck is missing ({e}): run scripts/test.sh, which installs it"))?;
    assert!(
        out.status.success(),
        "shellcheck:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(())
}

#[test]
fn install_worker_script_installs_once_and_refuses_wrong_binaries() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let worker = dir.path().join("itervox-worker");
    fs_err::write(
        &worker,
        "#!/bin/sh\n[ \"$1\" = version ] && echo 'itervox-worker 3.2.1 protocol 4'\n",
    )?;
    fs_err::set_permissions(&worker, std::fs::Permissions::from_mode(0o755))?;
    let prefix = dir.path().join("prefix");
    let (w, p) = (worker.display().to_string(), prefix.display().to_string());
    let target = prefix.join("bin/itervox-worker");

    let out = install_worker(&["--from", &w, "--prefix", &p, "--expect-version", "3.2.1"])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("installed"), "{}", text(&out.stdout));
    assert_eq!(fs_err::read(&target)?, fs_err::read(&worker)?);
    assert_eq!(fs_err::metadata(&target)?.permissions().mode() & 0o777, 0o755);
    let installed_inode = std::os::unix::fs::MetadataExt::ino(&fs_err::metadata(&target)?);

    let out = install_worker(&["--from", &w, "--prefix", &p])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("already"), "{}", text(&out.stdout));
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&fs_err::metadata(&target)?),
        installed_inode,
        "untouched"
    );

    let out = install_worker(&["--from", &w, "--prefix", &p, "--expect-version", "9.9.9"])?;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("expected 9.9.9"), "{}", text(&out.stderr));

    let out = install_worker(&["--from", &w, "--prefix", &p, "--sha256", &"0".repeat(64)])?;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("SHA-256"), "{}", text(&out.stderr));

    let junk = dir.path().join("junk");
    fs_err::write(&junk, "not a program")?;
    let out = install_worker(&["--from", &junk.display().to_string(), "--prefix", &p])?;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does not look like an itervox-worker"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        fs_err::read(&target)?,
        fs_err::read(&worker)?,
        "a refused binary replaces nothing"
    );

    let leftovers: Vec<_> = fs_err::read_dir(prefix.join("bin"))?.collect::<Result<Vec<_>, _>>()?;
    assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    Ok(())
}

#[test]
fn the_systemd_unit_runs_the_controller_hardened() -> anyhow::Result<()> {
    let unit = fs_err::read_to_string(repo_root().join("deploy/itervox.service"))?;
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "[Service]",
        "User=itervox",
        "Restart=on-failure",
        "KillMode=process",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/itervox",
        "WantedBy=multi-user.target",
    ] {
        assert!(has(line), "itervox.service lacks `{line}`");
    }
    assert!(
        unit.lines()
            .any(|l| l.starts_with("ExecStart=") && l.contains(" run --workflow ")),
        "ExecStart runs `itervox run --workflow …`"
    );

    // systemd's own checker, with ExecStart pointed at the binary this build produced.
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed here; checked the unit's settings only");
        return Ok(());
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir()?;
    let itervox = bin_path("itervox");
    let local = unit.replace("/usr/local/bin/itervox", &itervox.display().to_string());
    let path = dir.path().join("itervox.service");
    fs_err::write(&path, local)?;
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output()?;
    let complaints: Vec<String> = text(&out.stderr)
        .lines()
        .filter(|l| l.contains("itervox.service"))
        .map(str::to_string)
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify: {complaints:#?}"
    );
    Ok(())
}
