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
    /// Manage remote build hosts.
    Hosts(HostsArgs),
    /// Check every configured build host (reachable, trusted, login, worker, workspace, agent CLI):
    /// one line per finding; exits non-zero when something is wrong.
    Doctor(DoctorArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct HostsArgs {
    #[command(subcommand)]
    pub command: HostsCmd,
}

#[derive(Debug, Clone, Subcommand)]
pub enum HostsCmd {
    /// Upload this controller's itervox-worker to each host where it is missing or speaks another
    /// protocol version (following ssh.worker_path); prints one line per host.
    Install(HostsInstallArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct HostsInstallArgs {
    /// Hosts as `[user@]host[:port]`.
    #[arg(required = true, num_args = 1..)]
    pub hosts: Vec<String>,
    /// The workflow whose `ssh:` settings (user, key, known_hosts, worker_path) apply.
    #[arg(long, default_value = "WORKFLOW.md")]
    pub workflow: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// The workflow whose hosts and settings are checked.
    #[arg(long, default_value = "WORKFLOW.md")]
    pub workflow: PathBuf,
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
        Cmd::Hosts(HostsArgs {
            command: HostsCmd::Install(args),
        }) => install_hosts(args).await,
        Cmd::Doctor(args) => doctor(args).await,
    }
}

/// `itervox hosts install`: one line per host, `installed`/`replaced`/`current` or `error`; exits 1
/// when any host failed.
async fn install_hosts(args: HostsInstallArgs) -> anyhow::Result<ExitCode> {
    use itervox::hosts::host_spec::HostSpec;
    use itervox::hosts::install::{InstallAction, WorkerVersion, ensure_worker};
    use itervox::hosts::local::find_worker_binary;
    use itervox::hosts::ssh::SshClient;

    init_logging(None);
    let workflow = load_workflow(&args.workflow)?;
    let ssh = &workflow.config.ssh;
    let local = find_worker_binary("itervox-worker")
        .context("no local itervox-worker binary to upload (it belongs next to itervox or on PATH)")?;
    let client = SshClient::from_config(ssh);
    let expected = WorkerVersion::ours();
    let installs = args.hosts.iter().map(|host| {
        let (client, local, expected) = (&client, &local, &expected);
        async move {
            let spec = HostSpec::parse(host.trim()).map_err(|e| e.to_string())?;
            let conn = client.connect(&spec).await.map_err(|e| e.to_string())?;
            let outcome = ensure_worker(&conn, &ssh.worker_path, local, expected).await;
            conn.disconnect().await;
            outcome.map_err(|e| e.to_string())
        }
    });
    let outcomes = futures::future::join_all(installs).await;
    let mut failed = false;
    for (host, outcome) in args.hosts.iter().zip(outcomes) {
        match outcome {
            Ok(o) => {
                let (word, note) = match &o.action {
                    InstallAction::AlreadyCurrent => ("current", String::new()),
                    InstallAction::Installed => ("installed", String::new()),
                    InstallAction::Replaced { previous } if previous.trim().is_empty() => ("replaced", String::new()),
                    InstallAction::Replaced { previous } => ("replaced", format!(" (was {})", previous.trim())),
                };
                println!("{word:<9} {host}  {}  {}{note}", o.path, o.version);
            }
            Err(e) => {
                failed = true;
                println!("{:<9} {host}  {e}", "error");
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `itervox doctor`: the host checks of every configured remote host, one line per finding; exits 1
/// when any finding is an error.
async fn doctor(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    use itervox::hosts::doctor::{Check, Finding, HostCheckSettings, Severity, check_hosts, format_report, worst};
    use itervox::hosts::host_spec::HostSpec;
    use itervox::hosts::ssh::SshClient;

    init_logging(None);
    // The workflow is the first finding: a broken one is reported like any other check, not as a crash.
    let workflow = match load_workflow(&args.workflow) {
        Ok(w) => {
            println!("ok    workflow  {} loads", w.path.display());
            w
        }
        Err(e) => {
            println!("error workflow  {}", e.to_string().replace('\n', " "));
            return Ok(ExitCode::FAILURE);
        }
    };
    let config = &workflow.config;
    if config.agent.ssh_hosts.is_empty() {
        println!("ok    no SSH build hosts are configured (agent.ssh_hosts); sessions run on this machine");
        return Ok(ExitCode::SUCCESS);
    }
    let mut findings: Vec<Finding> = Vec::new();
    let mut specs = Vec::new();
    for host in &config.agent.ssh_hosts {
        match HostSpec::parse(host.trim()) {
            Ok(spec) => specs.push(spec),
            Err(e) => findings.push(Finding {
                host: host.clone(),
                check: Check::Connect,
                severity: Severity::Error,
                message: e.to_string(),
            }),
        }
    }
    let client = SshClient::from_config(&config.ssh);
    findings.extend(check_hosts(&client, &specs, &HostCheckSettings::from_config(config)).await);
    print!("{}", format_report(&findings));
    Ok(if worst(&findings) == Severity::Error {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
