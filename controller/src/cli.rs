//! The `itervox` command line: argument definitions and the commands they run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use itervox::config::load_workflow;
use itervox::daemon_log::RotatingFile;
use itervox::{RunOptions, demo};

#[derive(Debug, Parser)]
#[command(
    name = "itervox",
    version,
    about = "Runs a farm of coding agents on your issue tracker"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the controller for a WORKFLOW.md (the default command).
    Run(RunArgs),
    /// Start a throwaway demo project with sample issues and the scripted demo agent (no API key needed).
    Demo(DemoArgs),
    /// Watch and steer a running controller from the terminal (works over SSH).
    Tui(TuiArgs),
}

#[derive(Debug, Clone, clap::Args, Default)]
pub struct RunArgs {
    /// The workflow file.
    #[arg(long, default_value = "WORKFLOW.md")]
    pub workflow: PathBuf,
    /// Override server.port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Override server.host.
    #[arg(long)]
    pub host: Option<String>,
    /// Where the state database and the controller's log live (default: .itervox/state next to WORKFLOW.md).
    #[arg(long, env = "ITERVOX_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Port of the API and dashboard.
    #[arg(long, default_value_t = 8090)]
    pub port: u16,
    /// Folder for the demo project (default: a new temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TuiArgs {
    /// The controller's address (or its dashboard URL).
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    pub url: String,
    /// The API token (prefer the environment variable: arguments are visible to other users).
    #[arg(long, env = "ITERVOX_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Stops on SIGINT or SIGTERM; a second signal exits at once.
fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "Cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("Shutting down: no new work; running sessions keep going on their hosts");
        t.cancel();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        std::process::exit(130);
    });
    token
}

fn init_logging(log_file: Option<&RotatingFile>) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("ITERVOX_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,russh=warn,tower_http=warn"))
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter());
    let file = log_file.map(|f| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(f.clone())
            .with_filter(filter())
    });
    let _ = tracing_subscriber::registry().with(stderr).with(file).try_init();
}

fn dry_run() -> bool {
    std::env::var("ITERVOX_DRY_RUN").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

async fn run_controller(args: RunArgs, demo_mode: bool) -> anyhow::Result<ExitCode> {
    let workflow_path = std::path::absolute(&args.workflow).unwrap_or(args.workflow.clone());
    let workflow = load_workflow(&workflow_path)?;
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| workflow.dir().join(".itervox/state"));
    let log = RotatingFile::open(&state_dir.join("logs/itervox.log"), 10 * 1024 * 1024, 5)
        .with_context(|| format!("opening the log file under {}", state_dir.display()))?;
    init_logging(Some(&log));
    let host = args.host.clone().unwrap_or(workflow.config.server.host.clone());
    let port = args.port.unwrap_or(workflow.config.server.port);
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .with_context(|| format!("server.host {host:?} is not an IP address"))?;
    let token = std::env::var("ITERVOX_API_TOKEN").ok().filter(|t| !t.is_empty());
    itervox::check_bind_safety(&addr, token.as_deref(), workflow.config.server.allow_unauthenticated)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (is another controller running? use --port)"))?;
    let bound = listener.local_addr()?;
    let mut options = RunOptions::new(workflow, state_dir);
    options.api_token = token.clone();
    options.dry_run = dry_run();
    options.demo_mode = demo_mode;
    options.daemon_log = Some(log.path());
    let url = match &token {
        Some(t) => format!("http://{bound}/?token={t}"),
        None => format!("http://{bound}/"),
    };
    eprintln!("Itervox is running: dashboard {url}  API http://{bound}/api/v1");
    let shutdown = shutdown_on_signals();
    itervox::run(options, listener, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

async fn run_demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "itervox-demo-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )),
    };
    let setup = demo::create(&dir, args.port)?;
    eprintln!("Demo project created in {}", setup.dir.display());
    run_controller(
        RunArgs {
            workflow: setup.workflow.clone(),
            port: Some(args.port),
            host: None,
            state_dir: Some(setup.state_dir.clone()),
        },
        true,
    )
    .await
}

/// Runs the parsed command line.
pub async fn main_with(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command.unwrap_or(Cmd::Run(RunArgs::default())) {
        Cmd::Run(args) => {
            let args = RunArgs {
                workflow: if args.workflow.as_os_str().is_empty() {
                    PathBuf::from("WORKFLOW.md")
                } else {
                    args.workflow
                },
                ..args
            };
            run_controller(args, false).await
        }
        Cmd::Demo(args) => run_demo(args).await,
        Cmd::Tui(args) => itervox::tui::run(args.url, args.token)
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
    }
}
