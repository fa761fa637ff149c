//! `itervox doctor`'s host checks against real hosts: a healthy one, one that is down, one whose key
//! changed, one that refuses the login, and a broken workspace root / missing worker / missing agent.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use itervox::config::HostKeyPolicy;
use itervox::hosts::doctor::{Check, HostCheckSettings, Severity, check_host, check_hosts, format_report, worst};
use itervox::hosts::host_spec::HostSpec;
use itervox::hosts::install::WorkerVersion;
use itervox_tests::sshd::SshLab;

use super::support::client;

fn settings(agent_commands: &[&str]) -> HostCheckSettings {
    HostCheckSettings {
        worker_path: "itervox-worker".into(),
        install_worker: false,
        expected_worker: WorkerVersion::ours(),
        workspace_root: "~/.itervox/workspaces".into(),
        agent_commands: agent_commands.iter().map(|c| c.to_string()).collect(),
        command_timeout: Duration::from_secs(20),
    }
}

fn summary(findings: &[itervox::hosts::doctor::Finding], host: &str) -> Vec<(Check, Severity)> {
    findings
        .iter()
        .filter(|f| f.host == host)
        .map(|f| (f.check, f.severity))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_each_host_check_by_name() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let healthy = lab.start_host("127.0.0.2")?;
    let mut rekeyed = lab.start_host("127.0.0.3")?;
    let locked = lab.start_host("127.0.0.4")?;
    lab.trust(&rekeyed)?;
    rekeyed.rotate_host_key()?;
    fs_err::write(locked.dir().join("authorized_keys"), "")?;

    // The healthy host has the matching worker where the default worker_path rule looks.
    let bin = healthy.home().join(".local/bin");
    fs_err::create_dir_all(&bin)?;
    let worker = bin.join("itervox-worker");
    fs_err::write(&worker, format!("#!/bin/sh\necho '{}'\n", WorkerVersion::ours()))?;
    fs_err::set_permissions(&worker, std::fs::Permissions::from_mode(0o755))?;

    let down = HostSpec::parse("root@127.0.0.250:22")?;
    let hosts = vec![
        healthy.host_spec(),
        down.clone(),
        rekeyed.host_spec(),
        locked.host_spec(),
    ];
    let ssh = client(&lab, HostKeyPolicy::AcceptNew);
    let findings = check_hosts(&ssh, &hosts, &settings(&["sh -c true", "no-such-agent-cli --flag"])).await;
    let report = format_report(&findings);
    eprintln!("{report}");

    assert_eq!(
        summary(&findings, &healthy.spec()),
        vec![
            (Check::Connect, Severity::Ok),
            (Check::HostKey, Severity::Ok),
            (Check::Auth, Severity::Ok),
            (Check::Worker, Severity::Ok),
            (Check::Workspace, Severity::Ok),
            (Check::AgentCommand, Severity::Ok),
            (Check::AgentCommand, Severity::Error),
        ]
    );
    assert!(
        healthy.home().join(".itervox/workspaces").is_dir(),
        "the root was created"
    );
    assert_eq!(
        summary(&findings, &down.to_string()),
        vec![(Check::Connect, Severity::Error)]
    );
    assert_eq!(
        summary(&findings, &rekeyed.spec()),
        vec![(Check::Connect, Severity::Ok), (Check::HostKey, Severity::Error)]
    );
    assert_eq!(
        summary(&findings, &locked.spec()),
        vec![
            (Check::Connect, Severity::Ok),
            (Check::HostKey, Severity::Ok),
            (Check::Auth, Severity::Error)
        ]
    );
    assert_eq!(worst(&findings), Severity::Error);
    assert_eq!(report.lines().count(), findings.len(), "one line per finding");
    let missing = findings
        .iter()
        .find(|f| f.check == Check::AgentCommand && f.severity == Severity::Error)
        .expect("missing agent finding");
    assert!(missing.message.contains("`no-such-agent-cli`"), "{}", missing.message);
    let worker_line = findings
        .iter()
        .find(|f| f.check == Check::Worker)
        .expect("worker finding");
    assert!(
        worker_line.message.contains(&worker.display().to_string()),
        "{}",
        worker_line.message
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_worker_and_an_unwritable_root_are_named() -> anyhow::Result<()> {
    let lab = SshLab::new()?;
    let host = lab.start_host("127.0.0.2")?;
    let ssh = client(&lab, HostKeyPolicy::AcceptNew);
    let mut s = settings(&["sh"]);
    s.workspace_root = "/proc/itervox-cannot-create-this".into();

    let findings = check_host(&ssh, &host.host_spec(), &s).await;
    let worker = findings.iter().find(|f| f.check == Check::Worker).expect("worker");
    assert_eq!(worker.severity, Severity::Error);
    assert!(worker.message.contains("install_worker"), "{}", worker.message);
    let root = findings
        .iter()
        .find(|f| f.check == Check::Workspace)
        .expect("workspace");
    assert_eq!(root.severity, Severity::Error);
    assert!(
        root.message.contains("/proc/itervox-cannot-create-this"),
        "{}",
        root.message
    );

    s.install_worker = true;
    let findings = check_host(&ssh, &host.host_spec(), &s).await;
    let worker = findings.iter().find(|f| f.check == Check::Worker).expect("worker");
    assert_eq!(worker.severity, Severity::Warn, "{}", worker.message);
    assert!(
        worker.message.contains(".local/bin/itervox-worker"),
        "{}",
        worker.message
    );
    Ok(())
}
