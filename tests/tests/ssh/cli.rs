//! `itervox hosts install` and `itervox doctor` as processes against lab hosts: one line per host or
//! finding, and an exit code that says whether anything is wrong.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use itervox::hosts::install::WorkerVersion;
use itervox_tests::binaries::bin_path;
use itervox_tests::project::{IssueSpec, Project};
use itervox_tests::sshd::SshLab;

/// Where the workflow below puts the worker on each host (relative: under the login user's HOME).
const WORKER_PATH: &str = ".itervox-cli-test/bin/itervox-worker";
/// A loopback address nothing listens on.
const DOWN_HOST: &str = "root@127.0.0.250:22";

/// A project whose workflow reaches the lab with `hosts` as its build hosts and `sh` as agent command.
fn project(lab: &SshLab, hosts: &[String]) -> anyhow::Result<Project> {
    let ssh = lab.ssh_config();
    let project = Project::new(&[IssueSpec::new("ITX-1", "Backlog", "cli")], "", "");
    let ssh_yaml = format!(
        "ssh:\n  user: root\n  identity_file: {key}\n  known_hosts: {kh}\n  strict_host_key_checking: accept-new\n  \
         connect_timeout_ms: 10000\n  worker_path: {WORKER_PATH}\n",
        key = ssh
            .identity_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        kh = ssh.known_hosts.display(),
    );
    let text = fs_err::read_to_string(&project.workflow)?
        .replace("command: itervox-worker demo-agent", "command: sh")
        .replace(
            "  inline_input: true\n",
            &format!("  inline_input: true\n  ssh_hosts: [{}]\n", hosts.join(", ")),
        )
        .replacen("---\nWork on", &format!("{ssh_yaml}---\nWork on"), 1);
    fs_err::write(&project.workflow, text)?;
    Ok(project)
}

/// Runs `itervox <args>`; returns the exit code and stdout (stderr goes into failure messages).
fn itervox(args: &[&str], workflow: &Path) -> anyhow::Result<(i32, String, String)> {
    let out = Command::new(bin_path("itervox"))
        .args(args)
        .arg("--workflow")
        .arg(workflow)
        .env("ITERVOX_LOG", "warn")
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn line_of<'a>(stdout: &'a str, host: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.contains(host))
        .unwrap_or_else(|| panic!("no line for {host} in:\n{stdout}"))
}

#[test]
fn hosts_install_uploads_skips_and_replaces_one_line_per_host() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    let spec = host.spec();
    let project = project(&lab, std::slice::from_ref(&spec))?;
    let installed = host.home().join(WORKER_PATH);
    let ours = WorkerVersion::ours().to_string();

    // Missing on the healthy host, unreachable on the other: one line each, and a failing exit.
    let (code, out, err) = itervox(&["hosts", "install", &spec, DOWN_HOST], &project.workflow)?;
    assert_eq!(out.lines().count(), 2, "one line per host:\n{out}\n{err}");
    let line = line_of(&out, &spec);
    assert!(line.starts_with("installed"), "{line}");
    assert!(
        line.contains(&installed.display().to_string()) && line.contains(&ours),
        "{line}"
    );
    assert!(line_of(&out, DOWN_HOST).starts_with("error"), "{out}");
    assert_ne!(code, 0, "a failed host fails the command:\n{out}");
    assert_eq!(
        fs_err::read(&installed)?,
        fs_err::read(bin_path("itervox-worker"))?,
        "the controller's own worker was uploaded"
    );

    // Already there: nothing to do.
    let (code, out, err) = itervox(&["hosts", "install", &spec], &project.workflow)?;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(line_of(&out, &spec).starts_with("current"), "{out}");

    // Another protocol there: replaced, naming what was there before.
    fs_err::write(
        &installed,
        "#!/bin/sh\n[ \"$1\" = version ] && echo 'itervox-worker 0.0.1 protocol 999'\nexit 0\n",
    )?;
    fs_err::set_permissions(&installed, std::fs::Permissions::from_mode(0o755))?;
    let (code, out, err) = itervox(&["hosts", "install", &spec], &project.workflow)?;
    assert_eq!(code, 0, "{out}\n{err}");
    let line = line_of(&out, &spec);
    assert!(line.starts_with("replaced") && line.contains("protocol 999"), "{line}");
    assert_eq!(fs_err::read(&installed)?, fs_err::read(bin_path("itervox-worker"))?);
    Ok(())
}

#[test]
fn doctor_prints_one_line_per_finding_and_fails_when_something_is_wrong() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    let spec = host.spec();
    let installed = host.home().join(WORKER_PATH);
    fs_err::create_dir_all(installed.parent().expect("bin folder"))?;
    fs_err::copy(bin_path("itervox-worker"), &installed)?;

    // A healthy host alone: every finding is ok (or a warning) and the exit code is 0.
    let healthy = project(&lab, std::slice::from_ref(&spec))?;
    let (code, out, err) = itervox(&["doctor"], &healthy.workflow)?;
    assert_eq!(code, 0, "{out}\n{err}");
    for check in ["connect", "worker", "workspace", "agent"] {
        assert!(
            out.lines()
                .any(|l| l.contains(&spec) && l.contains(check) && l.starts_with("ok")),
            "an ok {check} line:\n{out}"
        );
    }
    assert!(!out.lines().any(|l| l.starts_with("error")), "{out}");

    // Add a host that is down: its connect finding is an error, and the command fails.
    let with_down = project(&lab, &[spec.clone(), DOWN_HOST.to_string()])?;
    let (code, out, err) = itervox(&["doctor"], &with_down.workflow)?;
    assert_ne!(code, 0, "{out}\n{err}");
    // Findings name the host in its canonical form (the default port left out).
    let down = line_of(&out, "root@127.0.0.250 ");
    assert!(down.starts_with("error") && down.contains("connect"), "{down}");
    assert!(
        out.lines().any(|l| l.contains(&spec) && l.starts_with("ok")),
        "the healthy host is still reported:\n{out}"
    );
    Ok(())
}

#[test]
fn doctor_reports_the_workflow_first_and_a_broken_one_as_an_error_line() -> anyhow::Result<()> {
    let project = Project::new(&[IssueSpec::new("ITX-1", "Backlog", "cli")], "", "");
    let (code, out, err) = itervox(&["doctor"], &project.workflow)?;
    assert_eq!(code, 0, "{out}\n{err}");
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("ok    workflow") && first.contains(&project.workflow.display().to_string()),
        "{out}"
    );

    // A broken edit: one error line naming the file, the line and the key; a failing exit code.
    let text = fs_err::read_to_string(&project.workflow)?;
    fs_err::write(
        &project.workflow,
        text.replace("  max_turns: 3\n", "  max_turns: lots\n"),
    )?;
    let (code, out, err) = itervox(&["doctor"], &project.workflow)?;
    assert_ne!(code, 0, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let line = lines[0];
    assert!(line.starts_with("error workflow"), "{line}");
    assert!(line.contains("WORKFLOW.md") && line.contains("max_turns"), "{line}");
    Ok(())
}
