//! Installing the controller's matching `itervox-worker` on a host over an existing SSH connection
//! (`ssh.install_worker`), and the command line that starts the worker there.
//!
//! Where the worker lives on the host, from `ssh.worker_path`:
//! - an absolute path (`/opt/itervox/bin/itervox-worker`) is used as is;
//! - `~/…` and other relative paths with a `/` (`bin/itervox-worker`) are relative to the login
//!   user's HOME;
//! - a bare name (`itervox-worker`, the default) is looked up on the PATH of a login shell
//!   (`sh -lc 'command -v itervox-worker'`), then in `~/.local/bin`; when neither holds the matching
//!   worker, it is installed as `~/.local/bin/<name>`.
//!
//! [`InstallOutcome::path`] is the absolute path that was found or installed: start the worker with
//! that path ([`worker_command`]), not with the bare name, since an older copy earlier on PATH would
//! otherwise win.
//!
//! The upload goes over the same connection: one exec channel runs a small script that writes stdin
//! to a temporary file in the target's folder, checks its SHA-256 with `sha256sum` (or `shasum -a
//! 256`), makes it executable, renames it over the target (atomic; a running worker keeps its old
//! inode), and prints the new binary's `version`. Calling [`ensure_worker`] again is a no-op.

use std::path::{Path, PathBuf};
use std::time::Duration;

use itervox_protocol::PROTOCOL_VERSION;
use sha2::{Digest, Sha256};

use crate::hosts::ssh::{ExitStatus, SshConnection, SshError, login_shell_command, shell_quote};

/// Limit for the probe (HOME, PATH lookup, `version`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// Limit for uploading and checking the binary.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Exit code of the upload script when the checksum differs.
const CHECKSUM_EXIT: u32 = 65;

/// What `itervox-worker version` prints: `itervox-worker <version> protocol <N>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerVersion {
    pub version: String,
    pub protocol: u32,
}

impl WorkerVersion {
    /// The worker this controller was built with: the same release and protocol number.
    pub fn ours() -> WorkerVersion {
        WorkerVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
            protocol: PROTOCOL_VERSION,
        }
    }

    /// Parses the first line of `itervox-worker version`; `None` for anything else.
    pub fn parse(output: &str) -> Option<WorkerVersion> {
        let line = output.lines().find(|l| !l.trim().is_empty())?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["itervox-worker", version, "protocol", protocol, ..] => Some(WorkerVersion {
                version: (*version).to_string(),
                protocol: protocol.parse().ok()?,
            }),
            _ => None,
        }
    }
}

impl std::fmt::Display for WorkerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "itervox-worker {} protocol {}", self.version, self.protocol)
    }
}

/// What [`ensure_worker`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallAction {
    /// The matching worker was already there.
    AlreadyCurrent,
    /// No worker was at the target path; it was uploaded.
    Installed,
    /// Another version was at the target path (its `version` output, or empty); it was replaced.
    Replaced { previous: String },
}

/// Where the worker is on the host and what was done to put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOutcome {
    /// Absolute path of the matching worker on the host.
    pub path: String,
    pub action: InstallAction,
    pub version: WorkerVersion,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("cannot read the local worker binary {}: {source}", path.display())]
    LocalBinary { path: PathBuf, source: std::io::Error },
    #[error("cannot find out where to install the worker on {host}: {detail}")]
    Probe { host: String, detail: String },
    #[error("uploading the worker to {host}:{path} failed ({status}): {stderr}")]
    Upload {
        host: String,
        path: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error(
        "the worker uploaded to {host}:{path} arrived damaged (sha256 {got} there, {want} here); nothing was replaced"
    )]
    Checksum {
        host: String,
        path: String,
        want: String,
        got: String,
    },
    #[error(
        "after installing, {host}:{path} reports {got:?} instead of \"{want}\": is {} the worker built with this controller?",
        local.display()
    )]
    StillMismatched {
        host: String,
        path: String,
        want: WorkerVersion,
        got: String,
        local: PathBuf,
    },
}

/// How `ssh.worker_path` maps to places on the host (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
enum WorkerLocation {
    /// Absolute, or relative to HOME (stored without the `~/`).
    Path { absolute: bool, path: String },
    /// A bare name: login PATH, then `~/.local/bin/<name>`.
    Name(String),
}

impl WorkerLocation {
    fn from_config(worker_path: &str) -> WorkerLocation {
        let p = worker_path.trim();
        if p.starts_with('/') {
            WorkerLocation::Path {
                absolute: true,
                path: p.to_string(),
            }
        } else if let Some(rest) = p.strip_prefix("~/") {
            WorkerLocation::Path {
                absolute: false,
                path: rest.to_string(),
            }
        } else if p.contains('/') {
            WorkerLocation::Path {
                absolute: false,
                path: p.trim_start_matches("./").to_string(),
            }
        } else {
            WorkerLocation::Name(if p.is_empty() { "itervox-worker" } else { p }.to_string())
        }
    }

    /// A shell script (for `sh -lc`) that prints `home<TAB>$HOME`, then `candidate<TAB>path<TAB>1 if
    /// something is there else 0<TAB>first line of its version output` for each place the worker may
    /// be, the install target last.
    fn probe_script(&self) -> String {
        let report = "report() { e=0; v=; if [ -e \"$1\" ]; then e=1; fi; \
                      if [ -f \"$1\" ] && [ -x \"$1\" ]; then v=$(\"$1\" version 2>/dev/null </dev/null | head -n 1); fi; \
                      printf 'candidate\\t%s\\t%s\\t%s\\n' \"$1\" \"$e\" \"$v\"; }";
        let home = "printf 'home\\t%s\\n' \"$HOME\"";
        match self {
            WorkerLocation::Path { absolute: true, path } => {
                format!("{report}; {home}; report {}", shell_quote(path))
            }
            WorkerLocation::Path { absolute: false, path } => {
                format!("{report}; {home}; report \"$HOME\"/{}", shell_quote(path))
            }
            WorkerLocation::Name(name) => format!(
                "{report}; {home}; p=$(command -v {n} 2>/dev/null) || p=; \
                 case \"$p\" in /*) report \"$p\" ;; esac; report \"$HOME\"/.local/bin/{n}",
                n = shell_quote(name)
            ),
        }
    }
}

/// One place the worker may be on a host, as [`locate_worker`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Absolute path on the host.
    pub path: String,
    /// Something (a file, maybe not a worker) is at `path`.
    pub present: bool,
    /// First line of its `version` output; empty when it printed nothing or is not executable.
    pub version: String,
}

impl Candidate {
    /// The parsed version, when the file there is a worker.
    pub fn worker_version(&self) -> Option<WorkerVersion> {
        WorkerVersion::parse(&self.version)
    }
}

#[derive(Debug)]
struct Probe {
    /// In search order; the install target is last.
    candidates: Vec<Candidate>,
}

fn parse_probe(stdout: &str) -> Option<Probe> {
    let mut home = None;
    let mut candidates = Vec::new();
    for line in stdout.lines() {
        let mut fields = line.splitn(4, '\t');
        match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some("home"), Some(h), None, None) => home = Some(h.to_string()),
            (Some("candidate"), Some(path), Some(present), version) => candidates.push(Candidate {
                path: path.to_string(),
                present: present == "1",
                version: version.unwrap_or("").trim().to_string(),
            }),
            _ => {}
        }
    }
    home.filter(|h| h.starts_with('/'))?;
    if candidates.is_empty() || !candidates.iter().all(|c| c.path.starts_with('/')) {
        return None;
    }
    Some(Probe { candidates })
}

/// Where the worker may be on the connection's host under the `ssh.worker_path` rule (see the module
/// docs), in search order with the install target last, and what each place holds. One channel.
pub async fn locate_worker(conn: &SshConnection, worker_path: &str) -> Result<Vec<Candidate>, InstallError> {
    let location = WorkerLocation::from_config(worker_path);
    let out = conn
        .run(&login_shell_command(&location.probe_script()), b"", PROBE_TIMEOUT)
        .await?;
    let probe = parse_probe(&out.stdout_text()).ok_or_else(|| InstallError::Probe {
        host: conn.spec().to_string(),
        detail: format!(
            "the probe script gave {} with stdout {:?} and stderr {:?}",
            out.status,
            out.stdout_text(),
            out.stderr_text()
        ),
    })?;
    Ok(probe.candidates)
}

/// Makes sure the worker at `worker_path` (the `ssh.worker_path` rule, see the module docs) on the
/// connection's host reports `expected`; otherwise uploads `local_worker_binary` there. Returns the
/// absolute path to start the worker with.
#[tracing::instrument(level = "debug", skip_all, fields(host = %conn.spec(), worker_path))]
pub async fn ensure_worker(
    conn: &SshConnection,
    worker_path: &str,
    local_worker_binary: &Path,
    expected: &WorkerVersion,
) -> Result<InstallOutcome, InstallError> {
    let host = conn.spec().to_string();
    let candidates = locate_worker(conn, worker_path).await?;
    if let Some(found) = candidates
        .iter()
        .find(|c| WorkerVersion::parse(&c.version).as_ref() == Some(expected))
    {
        tracing::debug!(%host, path = %found.path, "The matching worker is installed.");
        return Ok(InstallOutcome {
            path: found.path.clone(),
            action: InstallAction::AlreadyCurrent,
            version: expected.clone(),
        });
    }
    let Some(Candidate {
        path: target,
        present,
        version: previous,
    }) = candidates.last().cloned()
    else {
        return Err(InstallError::Probe {
            host,
            detail: "no install target".to_string(),
        });
    };

    let binary = tokio::fs::read(local_worker_binary)
        .await
        .map_err(|source| InstallError::LocalBinary {
            path: local_worker_binary.to_path_buf(),
            source,
        })?;
    let want = hex::encode(Sha256::digest(&binary));
    tracing::info!(%host, path = %target, bytes = binary.len(), "Uploading the worker.");
    let out = conn
        .run(&upload_command(&target, &want), &binary, UPLOAD_TIMEOUT)
        .await?;
    if out.status.code() == Some(CHECKSUM_EXIT) {
        let got = out
            .stderr_text()
            .lines()
            .find_map(|l| l.strip_prefix("checksum ").map(str::to_string))
            .unwrap_or_default();
        return Err(InstallError::Checksum {
            host,
            path: target,
            want,
            got,
        });
    }
    if !out.status.success() {
        return Err(InstallError::Upload {
            host,
            path: target,
            status: out.status.clone(),
            stderr: out.stderr_text().trim().to_string(),
        });
    }
    let reported = out.stdout_text().trim().to_string();
    if WorkerVersion::parse(&reported).as_ref() != Some(expected) {
        return Err(InstallError::StillMismatched {
            host,
            path: target,
            want: expected.clone(),
            got: reported,
            local: local_worker_binary.to_path_buf(),
        });
    }
    let action = if present {
        InstallAction::Replaced { previous }
    } else {
        InstallAction::Installed
    };
    tracing::info!(%host, path = %target, ?action, "Installed the worker.");
    Ok(InstallOutcome {
        path: target,
        action,
        version: expected.clone(),
    })
}

/// The upload script: stdin → temp file next to `target` → checksum → chmod → rename → `version`.
fn upload_command(target: &str, sha256: &str) -> String {
    let (dir, name) = match target.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => (".", target),
    };
    let script = format!(
        "set -eu\n\
         target={target}\n\
         dir={dir}\n\
         mkdir -p \"$dir\"\n\
         tmp=\"$dir\"/.{name}.upload.$$\n\
         trap 'rm -f \"$tmp\"' EXIT\n\
         cat > \"$tmp\"\n\
         if command -v sha256sum >/dev/null 2>&1; then sum=$(sha256sum \"$tmp\"); else sum=$(shasum -a 256 \"$tmp\"); fi\n\
         sum=${{sum%% *}}\n\
         if [ \"$sum\" != {sha256} ]; then echo \"checksum $sum\" >&2; exit {CHECKSUM_EXIT}; fi\n\
         chmod 755 \"$tmp\"\n\
         mv -f \"$tmp\" \"$target\"\n\
         trap - EXIT\n\
         \"$target\" version </dev/null\n",
        target = shell_quote(target),
        dir = shell_quote(dir),
        name = name.replace(
            |c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'),
            "_"
        ),
    );
    format!("sh -c {}", shell_quote(&script))
}

/// The command that starts the worker with `args` on a host: through a login shell (so a bare name is
/// found on the login PATH and `~` is HOME), replacing the shell (`exec`), e.g.
/// `worker_command("itervox-worker", &["serve", "--stdio"])`. Pass [`InstallOutcome::path`] when
/// the worker was installed or located by [`ensure_worker`].
pub fn worker_command(worker_path: &str, args: &[&str]) -> String {
    let program = match WorkerLocation::from_config(worker_path) {
        WorkerLocation::Path { absolute: true, path } => shell_quote(&path),
        WorkerLocation::Path { absolute: false, path } => format!("\"$HOME\"/{}", shell_quote(&path)),
        WorkerLocation::Name(name) => shell_quote(&name),
    };
    let mut script = format!("exec {program}");
    for arg in args {
        script.push(' ');
        script.push_str(&shell_quote(arg));
    }
    login_shell_command(&script)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_lines() {
        assert_eq!(
            WorkerVersion::parse("itervox-worker 0.1.0 protocol 1\n"),
            Some(WorkerVersion {
                version: "0.1.0".into(),
                protocol: 1
            })
        );
        assert_eq!(
            WorkerVersion::parse("\nitervox-worker 1.2.3-rc.1 protocol 12 (abc)"),
            Some(WorkerVersion {
                version: "1.2.3-rc.1".into(),
                protocol: 12
            })
        );
        for bad in [
            "",
            "itervox-worker 0.1.0",
            "other 0.1.0 protocol 1",
            "itervox-worker 0.1.0 protocol x",
        ] {
            assert_eq!(WorkerVersion::parse(bad), None, "{bad:?}");
        }
        let ours = WorkerVersion::ours();
        assert_eq!(WorkerVersion::parse(&ours.to_string()), Some(ours));
    }

    #[test]
    fn worker_path_rules() {
        use WorkerLocation::*;
        let loc = WorkerLocation::from_config;
        assert_eq!(loc("itervox-worker"), Name("itervox-worker".into()));
        assert_eq!(loc(""), Name("itervox-worker".into()));
        assert_eq!(
            loc("/opt/w"),
            Path {
                absolute: true,
                path: "/opt/w".into()
            }
        );
        assert_eq!(
            loc("~/bin/w"),
            Path {
                absolute: false,
                path: "bin/w".into()
            }
        );
        assert_eq!(
            loc("bin/w"),
            Path {
                absolute: false,
                path: "bin/w".into()
            }
        );
        assert_eq!(
            loc("./bin/w"),
            Path {
                absolute: false,
                path: "bin/w".into()
            }
        );
    }

    #[test]
    fn probe_output_parsing() {
        let out = "home\t/root\ncandidate\t/usr/bin/itervox-worker\t1\titervox-worker 0.0.9 protocol 1\ncandidate\t/root/.local/bin/itervox-worker\t0\t\n";
        let probe = parse_probe(out).expect("parses");
        assert_eq!(probe.candidates.len(), 2);
        assert_eq!(probe.candidates[0].version, "itervox-worker 0.0.9 protocol 1");
        assert!(probe.candidates[0].present);
        assert_eq!(
            probe.candidates[1],
            Candidate {
                path: "/root/.local/bin/itervox-worker".into(),
                present: false,
                version: String::new()
            }
        );
        assert!(parse_probe("candidate\t/x\t0\t\n").is_none(), "no home");
        assert!(parse_probe("home\t/root\n").is_none(), "no candidate");
        assert!(
            parse_probe("home\t/root\ncandidate\trelative\t0\t\n").is_none(),
            "relative path"
        );
    }

    #[test]
    fn commands_quote_and_use_a_login_shell() {
        assert_eq!(
            worker_command("itervox-worker", &["serve", "--stdio"]),
            "sh -lc 'exec itervox-worker serve --stdio'"
        );
        assert_eq!(
            worker_command("~/my bin/w", &["version"]),
            r#"sh -lc 'exec "$HOME"/'\''my bin/w'\'' version'"#
        );
        assert_eq!(worker_command("/opt/w", &[]), "sh -lc 'exec /opt/w'");
    }

    #[test]
    fn scripts_run_in_a_real_shell() {
        // The probe script is valid sh and finds nothing in an empty HOME.
        let dir = tempfile::tempdir().expect("tempdir");
        let script = WorkerLocation::Name("itervox-worker-not-installed".into()).probe_script();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("HOME", dir.path())
            .output()
            .expect("sh runs");
        let probe = parse_probe(&String::from_utf8_lossy(&out.stdout)).expect("probe output");
        assert_eq!(
            probe.candidates,
            vec![Candidate {
                path: format!("{}/.local/bin/itervox-worker-not-installed", dir.path().display()),
                present: false,
                version: String::new()
            }]
        );

        // The upload script installs a stand-in worker and prints its version; a wrong checksum
        // replaces nothing.
        let target = dir.path().join("deep/bin/w");
        let body = b"#!/bin/sh\necho itervox-worker 9.9.9 protocol 9\n";
        let sum = hex::encode(Sha256::digest(body));
        let run = |command: &str| {
            use std::io::Write;
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("sh runs");
            child.stdin.take().expect("stdin").write_all(body).expect("write");
            child.wait_with_output().expect("wait")
        };
        let target_text = target.display().to_string();
        let out = run(&upload_command(&target_text, &"0".repeat(64)));
        assert_eq!(out.status.code(), Some(CHECKSUM_EXIT as i32));
        assert!(!target.exists());
        let out = run(&upload_command(&target_text, &sum));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "itervox-worker 9.9.9 protocol 9"
        );
        let leftovers: Vec<_> = std::fs::read_dir(target.parent().expect("dir"))
            .expect("read dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("w")], "no temp files left");
    }
}
