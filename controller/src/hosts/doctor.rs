//! Host checks for `itervox doctor`: for each remote host, whether it can be reached, its host key
//! trusted, the login accepted, the matching worker found, the workspace root written and the agent
//! command found. Every check gives a [`Finding`] the CLI prints as one line.
//!
//! A failure that makes later checks meaningless (no connection, refused host key, refused login) ends
//! that host's checks; the others all run and each reports for itself.

use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Config;
use crate::hosts::host_spec::HostSpec;
use crate::hosts::install::{WorkerVersion, locate_worker};
use crate::hosts::ssh::{
    HostKeyTrust, SshClient, SshConnection, SshError, login_shell_command, shell_path, shell_quote,
};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Ok,
    Warn,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// What was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Connect,
    HostKey,
    Auth,
    Worker,
    Workspace,
    AgentCommand,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Connect => "connect",
            Check::HostKey => "host-key",
            Check::Auth => "auth",
            Check::Worker => "worker",
            Check::Workspace => "workspace",
            Check::AgentCommand => "agent",
        }
    }
}

/// One line of the doctor's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The host as configured (`root@build1:2222`).
    pub host: String,
    pub check: Check,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    fn new(host: &str, check: Check, severity: Severity, message: impl Into<String>) -> Finding {
        Finding {
            host: host.to_string(),
            check,
            severity,
            message: message.into(),
        }
    }
}

/// What the host checks compare against, taken from the workflow's configuration.
#[derive(Debug, Clone)]
pub struct HostCheckSettings {
    /// `ssh.worker_path`.
    pub worker_path: String,
    /// `ssh.install_worker`: a missing or stale worker is then a warning (it will be installed).
    pub install_worker: bool,
    /// The worker this controller needs.
    pub expected_worker: WorkerVersion,
    /// `workspace.root`, as written (`~` is the login user's HOME).
    pub workspace_root: String,
    /// Distinct agent command lines (`agent.command` and every enabled profile's).
    pub agent_commands: Vec<String>,
    /// Limit for each remote command.
    pub command_timeout: Duration,
}

impl HostCheckSettings {
    pub fn from_config(config: &Config) -> HostCheckSettings {
        let mut agent_commands = vec![config.agent.command.clone()];
        for profile in config.agent.profiles.values().filter(|p| p.enabled) {
            if !profile.command.trim().is_empty() && !agent_commands.contains(&profile.command) {
                agent_commands.push(profile.command.clone());
            }
        }
        HostCheckSettings {
            worker_path: config.ssh.worker_path.clone(),
            install_worker: config.ssh.install_worker,
            expected_worker: WorkerVersion::ours(),
            workspace_root: config.workspace.root.clone(),
            agent_commands,
            command_timeout: Duration::from_millis(config.ssh.connect_timeout_ms.max(1_000)),
        }
    }
}

/// Runs every check on each host (hosts concurrently) and returns the findings host by host, in the
/// order the hosts were given.
pub async fn check_hosts(client: &SshClient, hosts: &[HostSpec], settings: &HostCheckSettings) -> Vec<Finding> {
    let runs = hosts.iter().map(|spec| check_host(client, spec, settings));
    futures::future::join_all(runs).await.into_iter().flatten().collect()
}

/// Runs every check on one host.
pub async fn check_host(client: &SshClient, spec: &HostSpec, settings: &HostCheckSettings) -> Vec<Finding> {
    let host = spec.to_string();
    let mut findings = Vec::new();
    let started = Instant::now();
    let conn = match client.connect(spec).await {
        Ok(conn) => conn,
        Err(e) => {
            findings.extend(connect_failure(&host, &e));
            return findings;
        }
    };
    let connect_ms = started.elapsed().as_millis();
    let rtt = conn
        .last_latency()
        .map(|d| format!(", round trip {:.1} ms", d.as_secs_f64() * 1000.0))
        .unwrap_or_default();
    findings.push(Finding::new(
        &host,
        Check::Connect,
        Severity::Ok,
        format!("connected in {connect_ms} ms{rtt}"),
    ));
    findings.push(host_key_finding(&host, &conn, &client.options().known_hosts));
    findings.push(Finding::new(
        &host,
        Check::Auth,
        Severity::Ok,
        format!("logged in as {} with {}", conn.user(), conn.auth_method()),
    ));
    findings.push(worker_finding(&host, &conn, settings).await);
    findings.push(workspace_finding(&host, &conn, settings).await);
    for command in &settings.agent_commands {
        findings.push(agent_finding(&host, &conn, command, settings).await);
    }
    conn.disconnect().await;
    findings
}

/// Findings for a connection that did not come up: the failed check, preceded by the ones that passed.
fn connect_failure(host: &str, e: &SshError) -> Vec<Finding> {
    let reached = || Finding::new(host, Check::Connect, Severity::Ok, "reached the SSH server");
    let key_ok = || Finding::new(host, Check::HostKey, Severity::Ok, "host key accepted");
    match e {
        SshError::HostKeyUnknown { .. }
        | SshError::HostKeyChanged { .. }
        | SshError::HostKeyRevoked { .. }
        | SshError::KnownHosts(_) => vec![
            reached(),
            Finding::new(host, Check::HostKey, Severity::Error, e.to_string()),
        ],
        SshError::Auth { .. } | SshError::Key { .. } | SshError::HostSpec(_) => {
            vec![
                reached(),
                key_ok(),
                Finding::new(host, Check::Auth, Severity::Error, e.to_string()),
            ]
        }
        SshError::Resolve { .. }
        | SshError::Connect { .. }
        | SshError::Timeout { .. }
        | SshError::Handshake { .. }
        | SshError::Channel { .. }
        | SshError::Disconnected { .. } => vec![Finding::new(host, Check::Connect, Severity::Error, e.to_string())],
    }
}

fn host_key_finding(host: &str, conn: &SshConnection, known_hosts: &Path) -> Finding {
    let key = conn.host_key();
    let id = format!("{} {}", key.algorithm, key.fingerprint);
    match key.trust {
        HostKeyTrust::Known { line } => Finding::new(
            host,
            Check::HostKey,
            Severity::Ok,
            format!("{id} matches {}:{line}", known_hosts.display()),
        ),
        HostKeyTrust::Learned => Finding::new(
            host,
            Check::HostKey,
            Severity::Ok,
            format!("{id} was new and is now recorded in {}", known_hosts.display()),
        ),
        HostKeyTrust::Unchecked => Finding::new(
            host,
            Check::HostKey,
            Severity::Warn,
            format!("{id} was NOT checked (ssh.strict_host_key_checking: no); use accept-new or yes"),
        ),
    }
}

async fn worker_finding(host: &str, conn: &SshConnection, settings: &HostCheckSettings) -> Finding {
    let want = &settings.expected_worker;
    let candidates = match locate_worker(conn, &settings.worker_path).await {
        Ok(c) => c,
        Err(e) => return Finding::new(host, Check::Worker, Severity::Error, e.to_string()),
    };
    if let Some(found) = candidates.iter().find(|c| c.worker_version().as_ref() == Some(want)) {
        return Finding::new(host, Check::Worker, Severity::Ok, format!("{want} at {}", found.path));
    }
    let target = candidates.last().map(|c| c.path.clone()).unwrap_or_default();
    let seen: Vec<String> = candidates
        .iter()
        .filter(|c| c.present)
        .map(|c| match c.worker_version() {
            Some(v) => format!("{v} at {}", c.path),
            None => format!("something that does not answer `version` at {}", c.path),
        })
        .collect();
    let problem = if seen.is_empty() {
        format!("no itervox-worker found for ssh.worker_path {:?}", settings.worker_path)
    } else {
        format!("found {} but need {want}", seen.join(" and "))
    };
    if settings.install_worker {
        Finding::new(
            host,
            Check::Worker,
            Severity::Warn,
            format!("{problem}; it will be installed at {target} on first use (ssh.install_worker)"),
        )
    } else {
        Finding::new(
            host,
            Check::Worker,
            Severity::Error,
            format!("{problem}: set ssh.install_worker: true, or install it with deploy/install-worker.sh"),
        )
    }
}

async fn workspace_finding(host: &str, conn: &SshConnection, settings: &HostCheckSettings) -> Finding {
    let root = shell_path(&settings.workspace_root);
    let script = format!(
        "set -e; root={root}; mkdir -p \"$root\"; probe=\"$root/.itervox-doctor.$$\"; : > \"$probe\"; rm -f \"$probe\"; \
         cd \"$root\"; pwd -P"
    );
    match conn
        .run(&login_shell_command(&script), b"", settings.command_timeout)
        .await
    {
        Ok(out) if out.status.success() => Finding::new(
            host,
            Check::Workspace,
            Severity::Ok,
            format!("{} is writable", out.stdout_text().trim()),
        ),
        Ok(out) => Finding::new(
            host,
            Check::Workspace,
            Severity::Error,
            format!(
                "cannot create and write workspace.root {:?} ({}): {}",
                settings.workspace_root,
                out.status,
                out.stderr_text().trim()
            ),
        ),
        Err(e) => Finding::new(host, Check::Workspace, Severity::Error, e.to_string()),
    }
}

/// The program an agent command line runs: its first word after `VAR=value` assignments and `env`.
pub fn agent_program(command: &str) -> Option<&str> {
    let mut words = command.split_whitespace().peekable();
    while let Some(word) = words.peek() {
        if *word == "env" || (word.contains('=') && !word.starts_with('=') && !word.starts_with('/')) {
            words.next();
        } else {
            break;
        }
    }
    words.next()
}

async fn agent_finding(host: &str, conn: &SshConnection, command: &str, settings: &HostCheckSettings) -> Finding {
    let Some(program) = agent_program(command) else {
        return Finding::new(host, Check::AgentCommand, Severity::Error, "agent.command is empty");
    };
    let worker_name = Path::new(&settings.worker_path).file_name().and_then(|n| n.to_str());
    let program_name = Path::new(program).file_name().and_then(|n| n.to_str());
    if program_name.is_some() && program_name == worker_name {
        return Finding::new(
            host,
            Check::AgentCommand,
            Severity::Ok,
            format!("`{command}` runs the worker binary (see the worker check)"),
        );
    }
    let script = format!("command -v {}", shell_quote(program));
    match conn
        .run(&login_shell_command(&script), b"", settings.command_timeout)
        .await
    {
        Ok(out) if out.status.success() && !out.stdout_text().trim().is_empty() => Finding::new(
            host,
            Check::AgentCommand,
            Severity::Ok,
            format!("`{program}` is {}", out.stdout_text().trim()),
        ),
        Ok(_) => Finding::new(
            host,
            Check::AgentCommand,
            Severity::Error,
            format!(
                "`{program}` (from agent command `{command}`) is not on the login PATH of {}: install it on the host \
                 or write its full path in the command",
                conn.user()
            ),
        ),
        Err(e) => Finding::new(host, Check::AgentCommand, Severity::Error, e.to_string()),
    }
}

/// One finding as one line: `ok    root@build1:2222  connect    connected in 12 ms`.
pub fn format_finding(finding: &Finding) -> String {
    format!(
        "{:<5} {}  {:<9}  {}",
        finding.severity.as_str(),
        finding.host,
        finding.check.as_str(),
        finding.message
    )
}

/// All findings, one line each, with the host column aligned.
pub fn format_report(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.host.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{:<5} {:<width$}  {:<9}  {}\n",
            f.severity.as_str(),
            f.host,
            f.check.as_str(),
            f.message
        ));
    }
    out
}

/// The worst severity among `findings` (`Ok` when there are none), for the exit code.
pub fn worst(findings: &[Finding]) -> Severity {
    findings.iter().map(|f| f.severity).max().unwrap_or(Severity::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(host: &str, check: Check, severity: Severity, message: &str) -> Finding {
        Finding::new(host, check, severity, message)
    }

    #[test]
    fn one_line_per_finding() {
        let f = finding("root@build1:2222", Check::Connect, Severity::Ok, "connected in 12 ms");
        assert_eq!(
            format_finding(&f),
            "ok    root@build1:2222  connect    connected in 12 ms"
        );
        let f = finding(
            "h",
            Check::AgentCommand,
            Severity::Error,
            "`claude` is not on the login PATH",
        );
        assert_eq!(
            format_finding(&f),
            "error h  agent      `claude` is not on the login PATH"
        );
    }

    #[test]
    fn report_aligns_hosts_and_worst_picks_the_exit() {
        let findings = vec![
            finding("a", Check::Connect, Severity::Ok, "connected"),
            finding(
                "root@long-host:2222",
                Check::Worker,
                Severity::Warn,
                "will be installed",
            ),
            finding("a", Check::HostKey, Severity::Error, "changed"),
        ];
        let report = format_report(&findings);
        assert_eq!(
            report,
            "ok    a                    connect    connected\n\
             warn  root@long-host:2222  worker     will be installed\n\
             error a                    host-key   changed\n"
        );
        assert_eq!(worst(&findings), Severity::Error);
        assert_eq!(worst(&findings[..2]), Severity::Warn);
        assert_eq!(worst(&[]), Severity::Ok);
    }

    #[test]
    fn agent_program_skips_env_assignments() {
        assert_eq!(agent_program("claude --model x"), Some("claude"));
        assert_eq!(agent_program("FOO=1 BAR=2 codex exec"), Some("codex"));
        assert_eq!(agent_program("env FOO=1 /opt/bin/claude"), Some("/opt/bin/claude"));
        assert_eq!(agent_program("   "), None);
    }

    #[test]
    fn connect_failures_name_the_check_that_failed() {
        let refused = SshError::Auth {
            user: "root".into(),
            host: "h".into(),
            tried: vec![],
            remaining: vec![],
        };
        let checks: Vec<(Check, Severity)> = connect_failure("h", &refused)
            .iter()
            .map(|f| (f.check, f.severity))
            .collect();
        assert_eq!(
            checks,
            vec![
                (Check::Connect, Severity::Ok),
                (Check::HostKey, Severity::Ok),
                (Check::Auth, Severity::Error)
            ]
        );
        let changed = SshError::HostKeyChanged {
            host: "h".into(),
            fingerprint: "SHA256:x".into(),
            known_hosts: "/k".into(),
            line: 3,
        };
        let last = connect_failure("h", &changed).pop().expect("finding");
        assert_eq!((last.check, last.severity), (Check::HostKey, Severity::Error));
        assert!(last.message.contains("/k:3"), "{}", last.message);
        let down = SshError::Connect {
            host: "h".into(),
            addr: "127.0.0.250:22".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        let only = connect_failure("h", &down);
        assert_eq!(only.len(), 1);
        assert_eq!((only[0].check, only[0].severity), (Check::Connect, Severity::Error));
    }

    #[test]
    fn settings_collect_distinct_enabled_agent_commands() {
        let mut config = Config::default();
        config.agent.command = "claude".into();
        config.agent.profiles.insert(
            "fast".into(),
            crate::config::Profile {
                command: "codex exec".into(),
                enabled: true,
                ..Default::default()
            },
        );
        config.agent.profiles.insert(
            "off".into(),
            crate::config::Profile {
                command: "other".into(),
                enabled: false,
                ..Default::default()
            },
        );
        let settings = HostCheckSettings::from_config(&config);
        assert_eq!(
            settings.agent_commands,
            vec!["claude".to_string(), "codex exec".to_string()]
        );
        assert_eq!(settings.expected_worker, WorkerVersion::ours());
    }
}
