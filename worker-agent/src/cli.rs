//! The command line: `serve --stdio`, `supervise <session-dir>` (internal), `demo-agent [args…]`,
//! `version`, `--version`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::serve::WORKER_VERSION;

#[derive(Debug, Parser)]
#[command(
    name = "itervox-worker",
    version,
    about = "Itervox build-host worker: worktrees, hooks and agent sessions, driven over stdio"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Speak the worker protocol (JSON lines) on stdin and stdout.
    Serve {
        /// Use stdin/stdout (the only transport).
        #[arg(long, required = true)]
        stdio: bool,
    },
    /// Run one turn of a session (started by `serve`; not for people).
    #[command(hide = true)]
    Supervise {
        /// The session folder, `<root>/.itervox/sessions/<sessionId>`.
        dir: PathBuf,
    },
    /// The scripted demo agent, which speaks Claude Code's stream-json.
    DemoAgent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print `itervox-worker <version> protocol <N>`.
    Version,
}

/// The line `itervox-worker version` prints (installers compare it).
pub fn version_line() -> String {
    format!(
        "itervox-worker {WORKER_VERSION} protocol {}",
        itervox_protocol::PROTOCOL_VERSION
    )
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ITERVOX_WORKER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

fn runtime(multi_thread: bool) -> std::io::Result<tokio::runtime::Runtime> {
    if multi_thread {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    }
}

/// Runs the command line of this process.
pub fn run() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // The demo agent takes the agent CLI's flags as they are, so it bypasses clap entirely.
    if args.get(1).map(String::as_str) == Some("demo-agent") {
        let code = crate::demo_agent::main(args[2..].to_vec());
        return ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1));
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("{}", version_line());
            ExitCode::SUCCESS
        }
        Command::DemoAgent { args } => {
            let code = crate::demo_agent::main(args);
            ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
        }
        Command::Serve { stdio: _ } => {
            init_tracing();
            let self_exe = match std::env::current_exe() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("itervox-worker: cannot find its own executable: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime(true) {
                Ok(rt) => {
                    rt.block_on(crate::serve::serve(tokio::io::stdin(), tokio::io::stdout(), self_exe));
                    // Blocking tasks (a read of a stdin that never ends, for one) must not hold the exit.
                    rt.shutdown_timeout(std::time::Duration::from_secs(1));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("itervox-worker: cannot start the runtime: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Supervise { dir } => {
            init_tracing();
            let result = runtime(false).map_err(|e| e.to_string()).and_then(|rt| {
                rt.block_on(crate::session::supervisor::supervise(&dir))
                    .map_err(|e| e.to_string())
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, "The supervisor failed.");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_line_names_the_protocol() {
        assert_eq!(
            version_line(),
            format!("itervox-worker {} protocol 1", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn demo_agent_args_keep_their_flags() {
        let cli = Cli::try_parse_from(["itervox-worker", "demo-agent", "-p", "--resume", "x"]).unwrap();
        match cli.command {
            Command::DemoAgent { args } => assert_eq!(args, ["-p", "--resume", "x"]),
            other => panic!("{other:?}"),
        }
        assert!(
            Cli::try_parse_from(["itervox-worker", "serve"]).is_err(),
            "--stdio is required"
        );
    }
}
