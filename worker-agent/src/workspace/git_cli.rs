//! Running the `git` CLI (for clone and fetch, which git2 is built without) in its own process group,
//! with a timeout, never prompting for credentials.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::process_group;

/// Longest a clone or fetch may take.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// What a failed git command said.
#[derive(Debug)]
pub struct GitFailure {
    pub args: String,
    pub output: String,
}

/// Runs `git <args>`; the combined stderr/stdout on failure.
pub async fn git(args: &[&std::ffi::OsStr], cwd: Option<&Path>) -> Result<(), GitFailure> {
    let shown = args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
    let fail = |output: String| GitFailure {
        args: shown.clone(),
        output,
    };
    let mut cmd = Command::new("git");
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = process_group::spawn(&mut cmd).map_err(|e| fail(format!("cannot run git: {e}")))?;
    let mut stdout = child.child_mut().stdout.take();
    let mut stderr = child.child_mut().stderr.take();
    let read_all = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let a = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let b = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        tokio::join!(a, b);
        (out, err)
    };
    let waited = tokio::time::timeout(GIT_TIMEOUT, async {
        let (out, err) = read_all.await;
        (child.wait().await, out, err)
    })
    .await;
    match waited {
        Ok((Ok(status), out, err)) => {
            if status.success() {
                Ok(())
            } else {
                let mut text = String::from_utf8_lossy(&err).trim().to_string();
                let out = String::from_utf8_lossy(&out);
                if !out.trim().is_empty() {
                    text.push('\n');
                    text.push_str(out.trim());
                }
                Err(fail(format!("{} ({text})", process_group::describe_exit(&status))))
            }
        }
        Ok((Err(e), _, _)) => Err(fail(format!("cannot wait for git: {e}"))),
        Err(_) => {
            let _ = child.terminate(Duration::from_secs(2)).await;
            Err(fail(format!("timed out after {GIT_TIMEOUT:?}")))
        }
    }
}
