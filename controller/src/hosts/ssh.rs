//! Native SSH to build hosts (russh): `SshClient` connects, `SshConnection` is one long-lived,
//! multiplexed connection per host on which commands run as exec channels.
//!
//! A connection is authenticated with keys from ssh-agent and/or an identity file, checks the host's
//! key against known_hosts under `ssh.strict_host_key_checking` (`yes`, `accept-new`, `no`), sends a
//! keepalive after every `ssh.keepalive_interval_ms` without traffic and gives up on the host after
//! [`KEEPALIVE_MAX`] keepalives go unanswered (or after [`INACTIVITY_INTERVALS`] intervals with
//! nothing received), so a dead peer is noticed within a few intervals. The end of a connection,
//! whatever its cause, fires [`SshConnection::closed`] and leaves a reason in
//! [`SshConnection::disconnect_reason`].
//!
//! OpenSSH limits the channels open at once on one connection (`MaxSessions`, 10 by default); an
//! exec beyond that fails with [`SshError::Channel`] ("resource shortage").

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::ssh_key::Algorithm;
use russh::keys::{HashAlg, PrivateKey};
use russh::{ChannelMsg, Disconnect, Preferred};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{HostKeyPolicy, SshConfig};
use crate::hosts::host_spec::{HostSpec, HostSpecError, current_user};
use crate::hosts::known_hosts::{KnownHosts, KnownHostsError};

mod auth;
mod client_handler;
mod exec_channel;
mod shell_quote;

pub use auth::AuthMethod;
use client_handler::{ClientHandler, HandlerError, Shared};
pub use client_handler::{HostKeyInfo, HostKeyTrust};
pub use exec_channel::{
    ExecChannel, ExecControl, ExecOutput, ExecStdin, ExecStdout, ExitStatus, ExitWatch, StderrLines,
};
pub use russh::Sig;
pub use shell_quote::{login_shell_command, shell_path, shell_quote};

/// Unanswered keepalives after which the host is considered gone.
pub const KEEPALIVE_MAX: usize = 3;
/// Keepalive intervals with nothing received after which the host is considered gone.
pub const INACTIVITY_INTERVALS: u32 = 3;

/// Why an SSH operation failed. Messages name the host and say what to check or change.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot resolve the address of {host}: {source}; check the host name")]
    Resolve { host: String, source: std::io::Error },
    #[error("cannot connect to {host} ({addr}): {source}; is sshd running there and the port reachable?")]
    Connect {
        host: String,
        addr: String,
        source: std::io::Error,
    },
    #[error("timed out after {} ms {during} {host}; the host or the network may be down", after.as_millis())]
    Timeout {
        host: String,
        /// What was going on: "connecting to", "opening a channel on", "running `cmd` on", …
        during: String,
        after: Duration,
    },
    #[error("ssh handshake with {host} failed: {reason}")]
    Handshake { host: String, reason: String },
    #[error(
        "the host key of {host} ({fingerprint}) is not in {} and ssh.strict_host_key_checking is yes: check the \
         fingerprint with the host's administrator and add the key to that file, or use accept-new",
        known_hosts.display()
    )]
    HostKeyUnknown {
        host: String,
        fingerprint: String,
        known_hosts: PathBuf,
    },
    #[error(
        "the host key of {host} has CHANGED: it presented {fingerprint}, but {}:{line} records another key. This \
         can be a man-in-the-middle attack; if the host was reinstalled, remove line {line} from {} and connect again",
        known_hosts.display(), known_hosts.display()
    )]
    HostKeyChanged {
        host: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },
    #[error("the host key of {host} ({fingerprint}) is marked @revoked in {}:{line}; refusing to connect", known_hosts.display())]
    HostKeyRevoked {
        host: String,
        fingerprint: String,
        known_hosts: PathBuf,
        line: usize,
    },
    #[error(transparent)]
    KnownHosts(#[from] KnownHostsError),
    #[error("{}", auth_message(user, host, tried, remaining))]
    Auth {
        user: String,
        host: String,
        /// One line per key offered (or key source that failed).
        tried: Vec<String>,
        /// Methods the host would still accept.
        remaining: Vec<String>,
    },
    #[error("cannot use the private key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("ssh channel on {host} failed: {reason}")]
    Channel { host: String, reason: String },
    #[error("the ssh connection to {host} is closed: {reason}")]
    Disconnected { host: String, reason: String },
    #[error(transparent)]
    HostSpec(#[from] HostSpecError),
}

fn auth_message(user: &str, host: &str, tried: &[String], remaining: &[String]) -> String {
    let host_only = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let mut text = format!("authentication failed for {user}@{host_only}: ");
    if tried.is_empty() {
        text.push_str("no key to offer: set ssh.identity_file or ssh.use_agent");
    } else {
        text.push_str(&tried.join("; "));
    }
    if !remaining.is_empty() {
        text.push_str(&format!(" (the host accepts: {})", remaining.join(", ")));
    }
    text.push_str(&format!(
        ". Add the public key to ~{user}/.ssh/authorized_keys on the host, or point ssh.identity_file / ssh.use_agent at a key it accepts"
    ));
    text
}

impl SshError {
    /// Whether trying again later can help (network trouble, a host that is down) as opposed to a
    /// problem only the operator can fix (host keys, keys, authentication, bad host strings).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SshError::Resolve { .. }
                | SshError::Connect { .. }
                | SshError::Timeout { .. }
                | SshError::Handshake { .. }
                | SshError::Channel { .. }
                | SshError::Disconnected { .. }
        )
    }
}

/// A passphrase, kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(String);

impl Passphrase {
    pub fn new(text: impl Into<String>) -> Passphrase {
        Passphrase(text.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// Everything a connection needs, resolved from [`SshConfig`] and the environment.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `ssh.user`: the login user for hosts written without `user@` (else the current user).
    pub default_user: Option<String>,
    pub identity_file: Option<PathBuf>,
    /// The identity file's passphrase (read from the environment).
    pub identity_passphrase: Option<Passphrase>,
    /// Name of the environment variable the passphrase comes from, for messages.
    pub identity_passphrase_env: Option<String>,
    pub use_agent: bool,
    /// The agent's socket (`SSH_AUTH_SOCK`).
    pub agent_socket: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub host_key_policy: HostKeyPolicy,
    /// Limit for resolving, TCP connect, handshake and authentication together; also for opening a
    /// channel.
    pub connect_timeout: Duration,
    /// `None` disables keepalives (and with them the detection of a silent dead peer).
    pub keepalive_interval: Option<Duration>,
}

impl ConnectOptions {
    /// Reads `ssh.*` plus `SSH_AUTH_SOCK` and the passphrase variable from the environment. A leading
    /// `~` in paths is expanded with `$HOME` (the config loader normally did it already).
    pub fn from_config(ssh: &SshConfig) -> ConnectOptions {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        ConnectOptions {
            default_user: ssh.user.clone().filter(|u| !u.is_empty()),
            identity_file: ssh.identity_file.as_deref().map(expand_home),
            identity_passphrase: ssh.identity_passphrase_env.as_deref().and_then(env).map(Passphrase),
            identity_passphrase_env: ssh.identity_passphrase_env.clone(),
            use_agent: ssh.use_agent,
            agent_socket: env("SSH_AUTH_SOCK").map(PathBuf::from),
            known_hosts: expand_home(&ssh.known_hosts),
            host_key_policy: ssh.strict_host_key_checking,
            connect_timeout: Duration::from_millis(ssh.connect_timeout_ms.max(1)),
            keepalive_interval: (ssh.keepalive_interval_ms > 0)
                .then(|| Duration::from_millis(ssh.keepalive_interval_ms)),
        }
    }

    fn login_user(&self, spec: &HostSpec) -> Result<String, SshError> {
        if let Some(user) = spec.user.as_ref().or(self.default_user.as_ref()) {
            return Ok(user.clone());
        }
        current_user().ok_or_else(|| SshError::HostSpec(HostSpecError::NoUser { host: spec.to_string() }))
    }
}

fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

/// Connects to hosts with one set of options; the identity file is loaded (and decrypted) once and
/// reused. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SshClient {
    opts: Arc<ConnectOptions>,
    identity: Arc<OnceCell<Arc<PrivateKey>>>,
}

/// Connects to `spec` with the settings of `ssh` (see [`SshClient::connect`]).
pub async fn connect(spec: &HostSpec, ssh: &SshConfig) -> Result<SshConnection, SshError> {
    SshClient::from_config(ssh).connect(spec).await
}

impl SshClient {
    pub fn new(opts: ConnectOptions) -> SshClient {
        SshClient {
            opts: Arc::new(opts),
            identity: Arc::new(OnceCell::new()),
        }
    }

    pub fn from_config(ssh: &SshConfig) -> SshClient {
        SshClient::new(ConnectOptions::from_config(ssh))
    }

    pub fn options(&self) -> &ConnectOptions {
        &self.opts
    }

    /// Resolves, connects, checks the host key and authenticates, all within `connect_timeout`.
    #[tracing::instrument(level = "debug", skip(self), fields(host = %spec))]
    pub async fn connect(&self, spec: &HostSpec) -> Result<SshConnection, SshError> {
        let limit = self.opts.connect_timeout;
        match tokio::time::timeout(limit, self.connect_inner(spec)).await {
            Ok(result) => result,
            Err(_) => Err(SshError::Timeout {
                host: spec.to_string(),
                during: "connecting to".to_string(),
                after: limit,
            }),
        }
    }

    async fn connect_inner(&self, spec: &HostSpec) -> Result<SshConnection, SshError> {
        let opts = &*self.opts;
        let host = spec.to_string();
        let user = opts.login_user(spec)?;
        let started = Instant::now();

        let addrs: Vec<_> = tokio::net::lookup_host(spec.address())
            .await
            .map_err(|source| SshError::Resolve {
                host: host.clone(),
                source,
            })?
            .collect();
        let mut last_err = None;
        let mut stream = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = Some((addr.to_string(), e)),
            }
        }
        let stream = match (stream, last_err) {
            (Some(s), _) => s,
            (None, Some((addr, source))) => return Err(SshError::Connect { host, addr, source }),
            (None, None) => {
                return Err(SshError::Resolve {
                    host,
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses"),
                });
            }
        };
        let _ = stream.set_nodelay(true);

        let known_hosts_name = spec.known_hosts_name();
        let mut preferred = Preferred {
            cipher: cipher_order().into(),
            ..Preferred::default()
        };
        if opts.host_key_policy != HostKeyPolicy::No {
            let known = KnownHosts::load(&opts.known_hosts)?;
            preferred.key = preferred_host_key_order(&known.algorithms_for(&known_hosts_name)).into();
        }
        let shared = Arc::new(Shared::default());
        let keepalive_note = match opts.keepalive_interval {
            Some(k) => format!("keepalive every {} ms", k.as_millis()),
            None => "keepalives off".to_string(),
        };
        let handler = ClientHandler {
            host: host.clone(),
            known_hosts_name,
            known_hosts: opts.known_hosts.clone(),
            policy: opts.host_key_policy,
            keepalive_note,
            shared: shared.clone(),
        };
        let config = client::Config {
            keepalive_interval: opts.keepalive_interval,
            keepalive_max: KEEPALIVE_MAX,
            inactivity_timeout: opts.keepalive_interval.map(|k| k * INACTIVITY_INTERVALS),
            nodelay: true,
            preferred,
            ..Default::default()
        };
        let mut handle = client::connect_stream(Arc::new(config), stream, handler)
            .await
            .map_err(|e| match e {
                HandlerError::HostKey(e) => *e,
                HandlerError::Russh(e) => SshError::Handshake {
                    host: host.clone(),
                    reason: handshake_reason(&e),
                },
            })?;

        let identity = match &opts.identity_file {
            Some(path) => Some(self.identity(path).await),
            None => None,
        };
        let method = auth::authenticate(&mut handle, &user, &host, opts, identity).await?;
        let host_key = shared.host_key().unwrap_or(HostKeyInfo {
            algorithm: String::new(),
            fingerprint: String::new(),
            trust: HostKeyTrust::Unchecked,
        });
        tracing::debug!(%host, %user, %method, elapsed_ms = started.elapsed().as_millis() as u64, "SSH connection ready.");
        let conn = SshConnection {
            inner: Arc::new(ConnectionInner {
                handle,
                spec: spec.clone(),
                user,
                shared,
                host_key,
                auth_method: method,
                op_timeout: opts.connect_timeout,
            }),
        };
        // Seeds `last_latency`. A server that never answers global requests breaks the SSH spec but
        // can still run commands, so a missing answer is only logged.
        if let Err(e) = conn.latency(opts.connect_timeout.min(Duration::from_secs(5))).await {
            tracing::warn!(%host, error = %e, "No answer to a keepalive right after connecting.");
        }
        Ok(conn)
    }

    /// The identity file's key, loaded once; a failure is not cached (the operator may fix the file).
    async fn identity(&self, path: &Path) -> Result<Arc<PrivateKey>, SshError> {
        self.identity
            .get_or_try_init(|| async {
                let path = path.to_path_buf();
                let pass = self.opts.identity_passphrase.clone();
                let env = self.opts.identity_passphrase_env.clone();
                let task_path = path.clone();
                tokio::task::spawn_blocking(move || {
                    auth::load_identity_file(&task_path, pass.as_ref(), env.as_deref()).map(Arc::new)
                })
                .await
                .map_err(|e| SshError::Key {
                    path,
                    reason: format!("loading it failed: {e}"),
                })?
            })
            .await
            .cloned()
    }
}

/// The ciphers offered, best first (the client's order decides): AES-256-GCM leads where this CPU does
/// AES in hardware, where it moves a session's log stream with a fraction of ChaCha20-Poly1305's CPU
/// (and the host's `sshd` gains as much); elsewhere ChaCha20-Poly1305, OpenSSH's own first choice.
fn cipher_order() -> Vec<russh::cipher::Name> {
    use russh::cipher::{AES_128_CTR, AES_192_CTR, AES_256_CTR, AES_256_GCM, CHACHA20_POLY1305};
    let (first, second) = if hardware_aes() {
        (AES_256_GCM, CHACHA20_POLY1305)
    } else {
        (CHACHA20_POLY1305, AES_256_GCM)
    };
    vec![first, second, AES_256_CTR, AES_192_CTR, AES_128_CTR]
}

fn hardware_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes") && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// russh's default host key order with the types recorded for this host moved to the front, so the
/// host presents a key that known_hosts can vouch for (OpenSSH does the same).
fn preferred_host_key_order(known: &[Algorithm]) -> Vec<Algorithm> {
    let defaults: Vec<Algorithm> = Preferred::DEFAULT.key.to_vec();
    let mut order: Vec<Algorithm> = Vec::new();
    for alg in known {
        let family: Vec<Algorithm> = if matches!(alg, Algorithm::Rsa { .. }) {
            vec![
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512),
                },
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha256),
                },
                Algorithm::Rsa { hash: None },
            ]
        } else {
            vec![alg.clone()]
        };
        for a in family {
            if defaults.contains(&a) && !order.contains(&a) {
                order.push(a);
            }
        }
    }
    for a in defaults {
        if !order.contains(&a) {
            order.push(a);
        }
    }
    order
}

fn handshake_reason(e: &russh::Error) -> String {
    match e {
        russh::Error::Disconnect | russh::Error::HUP => {
            "the host closed the connection during the handshake (too many unauthenticated connections, a \
             firewall, or not an SSH server)"
                .to_string()
        }
        russh::Error::IO(io) => format!("connection lost during the handshake: {io}"),
        russh::Error::Version => "the host did not answer with an SSH version line (is it an SSH server?)".to_string(),
        other => other.to_string(),
    }
}

/// One authenticated connection to a host. Cheap to clone; the connection ends when every clone and
/// every channel opened on it has been dropped, on [`SshConnection::disconnect`], or when the host is
/// lost.
#[derive(Clone)]
pub struct SshConnection {
    inner: Arc<ConnectionInner>,
}

struct ConnectionInner {
    handle: Handle<ClientHandler>,
    spec: HostSpec,
    user: String,
    shared: Arc<Shared>,
    host_key: HostKeyInfo,
    auth_method: AuthMethod,
    op_timeout: Duration,
}

impl std::fmt::Debug for SshConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshConnection")
            .field("host", &self.inner.spec.to_string())
            .field("user", &self.inner.user)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl SshConnection {
    pub fn spec(&self) -> &HostSpec {
        &self.inner.spec
    }

    /// The user the connection is logged in as.
    pub fn user(&self) -> &str {
        &self.inner.user
    }

    /// The key the host presented and how it was trusted.
    pub fn host_key(&self) -> &HostKeyInfo {
        &self.inner.host_key
    }

    /// How the connection authenticated.
    pub fn auth_method(&self) -> &AuthMethod {
        &self.inner.auth_method
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.closed.is_cancelled() || self.inner.handle.is_closed()
    }

    /// Resolves when the connection has ended (host lost, keepalives unanswered, disconnected).
    pub async fn closed(&self) {
        self.inner.shared.closed.cancelled().await
    }

    /// A token cancelled when the connection ends, for `select!` in other tasks.
    pub fn closed_token(&self) -> CancellationToken {
        self.inner.shared.closed.clone()
    }

    /// Why the connection ended, once it has.
    pub fn disconnect_reason(&self) -> Option<String> {
        if self.is_closed() {
            self.inner.shared.reason()
        } else {
            None
        }
    }

    fn host(&self) -> String {
        self.inner.spec.to_string()
    }

    fn disconnected_error(&self) -> SshError {
        SshError::Disconnected {
            host: self.host(),
            reason: self
                .inner
                .shared
                .reason()
                .unwrap_or_else(|| "the connection ended".to_string()),
        }
    }

    /// Ends the connection (politely, with an SSH disconnect message) and waits until it is down.
    pub async fn disconnect(&self) {
        self.inner.shared.set_reason("closed by the controller".to_string());
        let _ = self
            .inner
            .handle
            .disconnect(Disconnect::ByApplication, "itervox controller closing", "en")
            .await;
        let _ = tokio::time::timeout(self.inner.op_timeout, self.closed()).await;
    }

    /// Round-trip time of one SSH-level request: a `keepalive@openssh.com` global request with
    /// want-reply, which sshd answers itself without starting any process on the host (so it is far
    /// cheaper than running `true`). Fails with `Disconnected` when the connection is down and with
    /// `Timeout` when no answer comes within `limit`.
    pub async fn latency(&self, limit: Duration) -> Result<Duration, SshError> {
        if self.is_closed() {
            return Err(self.disconnected_error());
        }
        let started = Instant::now();
        let request = self
            .inner
            .handle
            .send_global_request("keepalive@openssh.com", &[], true);
        match tokio::time::timeout(limit, request).await {
            // OpenSSH answers this request with a failure reply, which is an answer all the same.
            Ok(Ok(_)) | Ok(Err(russh::Error::RequestDenied)) => {
                let rtt = started.elapsed();
                let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
                self.inner.shared.latency_micros.store(micros, Ordering::Relaxed);
                Ok(rtt)
            }
            Ok(Err(_)) => Err(self.disconnected_error()),
            Err(_) => Err(SshError::Timeout {
                host: self.host(),
                during: "waiting for a keepalive answer from".to_string(),
                after: limit,
            }),
        }
    }

    /// The round trip measured by the last successful [`SshConnection::latency`] call (one is made
    /// when the connection is set up); cheap, for status displays.
    pub fn last_latency(&self) -> Option<Duration> {
        match self.inner.shared.latency_micros.load(Ordering::Relaxed) {
            0 => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    /// Runs `command` (given to the login user's shell as one string, as `ssh host command` does) on a
    /// new channel and returns its streams. See [`ExecChannel`].
    pub async fn exec(&self, command: &str) -> Result<ExecChannel, SshError> {
        let (channel, early) = self.open_exec(command).await?;
        let (read, write) = channel.split();
        Ok(exec_channel::start(read, write, early, self.host()))
    }

    /// Runs `command` to completion: writes `stdin` to it (then EOF), collects stdout and stderr, and
    /// returns them with the exit status. A command that exits without reading all of its stdin is not
    /// an error. After `timeout` the channel is closed and `Timeout` returned.
    pub async fn run(&self, command: &str, stdin: &[u8], timeout: Duration) -> Result<ExecOutput, SshError> {
        let deadline = Instant::now() + timeout;
        let timed_out = || SshError::Timeout {
            host: self.host(),
            during: format!("running `{}` on", short_command(command)),
            after: timeout,
        };
        let (channel, early) = tokio::time::timeout_at(deadline, self.open_exec(command))
            .await
            .map_err(|_| timed_out())??;
        let (mut read, write) = channel.split();
        let write_stdin = async {
            if !stdin.is_empty() {
                let _ = write.data(stdin).await;
            }
            let _ = write.eof().await;
            // The writer's job is done; let the reader decide when the command has finished.
            std::future::pending::<()>().await
        };
        let collect = async {
            let mut out = ExecOutput {
                status: ExitStatus::Unknown,
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
            let mut closed = false;
            let mut early = early.into_iter();
            loop {
                let msg = match early.next() {
                    Some(msg) => Some(msg),
                    None => read.wait().await,
                };
                match msg {
                    Some(ChannelMsg::Data { data }) => out.stdout.extend_from_slice(&data),
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => out.stderr.extend_from_slice(&data),
                    Some(ChannelMsg::ExitStatus { exit_status }) => out.status = ExitStatus::Code(exit_status),
                    Some(ChannelMsg::ExitSignal {
                        signal_name,
                        core_dumped,
                        ..
                    }) => {
                        out.status = ExitStatus::Signal {
                            signal: exec_channel::signal_name_of(&signal_name),
                            core_dumped,
                        }
                    }
                    Some(ChannelMsg::Close) => {
                        closed = true;
                        break;
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            (out, closed)
        };
        let result = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                collected = collect => collected,
                () = write_stdin => unreachable!("the stdin writer never finishes"),
            }
        })
        .await;
        match result {
            Ok((out, true)) => Ok(out),
            Ok((out, false)) if out.status != ExitStatus::Unknown => Ok(out),
            Ok((_, false)) => Err(self.disconnected_error()),
            Err(_) => {
                let _ = write.close().await;
                Err(timed_out())
            }
        }
    }

    /// Opens a session channel and execs `command`, waiting for the host's yes or no.
    async fn open_exec(&self, command: &str) -> Result<(russh::Channel<client::Msg>, Vec<ChannelMsg>), SshError> {
        if self.is_closed() {
            return Err(self.disconnected_error());
        }
        let limit = self.inner.op_timeout;
        let open = async {
            let mut channel = self.inner.handle.channel_open_session().await.map_err(|e| match e {
                russh::Error::ChannelOpenFailure(reason) => SshError::Channel {
                    host: self.host(),
                    reason: format!(
                        "the host refused a new channel ({}); OpenSSH allows MaxSessions (10 by default) at once",
                        reason.description()
                    ),
                },
                _ => self.disconnected_error(),
            })?;
            channel
                .exec(true, command)
                .await
                .map_err(|_| self.disconnected_error())?;
            let mut early = Vec::new();
            loop {
                match channel.wait().await {
                    Some(ChannelMsg::Success) => return Ok((channel, early)),
                    Some(ChannelMsg::Failure) => {
                        return Err(SshError::Channel {
                            host: self.host(),
                            reason: format!("the host refused to run `{}`", short_command(command)),
                        });
                    }
                    Some(ChannelMsg::WindowAdjusted { .. }) => {}
                    Some(other) => early.push(other),
                    None => return Err(self.disconnected_error()),
                }
            }
        };
        tokio::time::timeout(limit, open).await.map_err(|_| SshError::Timeout {
            host: self.host(),
            during: "opening a channel on".to_string(),
            after: limit,
        })?
    }
}

/// The first line of a command, cut to 80 characters, for messages.
fn short_command(command: &str) -> String {
    let line = command.lines().next().unwrap_or("");
    let mut short: String = line.chars().take(80).collect();
    if short.len() < command.len() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::EcdsaCurve;

    #[test]
    fn ciphers_lead_with_what_this_cpu_does_fastest() {
        let order = cipher_order();
        let first = if hardware_aes() {
            russh::cipher::AES_256_GCM
        } else {
            russh::cipher::CHACHA20_POLY1305
        };
        assert_eq!(order[0], first);
        assert!(order.contains(&russh::cipher::AES_256_GCM) && order.contains(&russh::cipher::CHACHA20_POLY1305));
        assert_eq!(order.len(), 5, "every cipher russh offers by default stays offered");
    }

    #[test]
    fn known_key_types_go_first() {
        let order = preferred_host_key_order(&[Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        }]);
        assert_eq!(
            order[0],
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256
            }
        );
        assert_eq!(order.len(), Preferred::DEFAULT.key.len());
        let order = preferred_host_key_order(&[Algorithm::Rsa { hash: None }]);
        assert!(order[..3].iter().all(|a| matches!(a, Algorithm::Rsa { .. })));
        assert_eq!(preferred_host_key_order(&[]), Preferred::DEFAULT.key.to_vec());
    }

    #[test]
    fn auth_message_names_user_host_and_keys() {
        let err = SshError::Auth {
            user: "root".into(),
            host: "root@127.0.0.2".into(),
            tried: vec!["the host refused key /k/id_ed25519 (ssh-ed25519 SHA256:x)".into()],
            remaining: vec!["publickey".into()],
        };
        let text = err.to_string();
        assert!(
            text.starts_with("authentication failed for root@127.0.0.2: the host refused key /k/id_ed25519"),
            "{text}"
        );
        assert!(text.contains("the host accepts: publickey"), "{text}");
    }

    #[test]
    fn options_from_config_expand_home_and_disable_keepalive_at_zero() {
        let mut ssh = SshConfig {
            keepalive_interval_ms: 0,
            ..SshConfig::default()
        };
        let opts = ConnectOptions::from_config(&ssh);
        assert_eq!(opts.keepalive_interval, None);
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(opts.known_hosts, PathBuf::from(home).join(".ssh/known_hosts"));
        }
        ssh.keepalive_interval_ms = 500;
        assert_eq!(
            ConnectOptions::from_config(&ssh).keepalive_interval,
            Some(Duration::from_millis(500))
        );
    }

    /// The link's transport holds the parts in `Box<dyn AsyncRead/AsyncWrite + Send + Unpin>` and the
    /// rest in a `Box<dyn Any + Send + Sync>` guard.
    #[test]
    fn channel_parts_fit_a_transport() {
        fn reader<T: tokio::io::AsyncRead + Send + Unpin + 'static>() {}
        fn writer<T: tokio::io::AsyncWrite + Send + Unpin + 'static>() {}
        fn guard<T: std::any::Any + Send + Sync>() {}
        fn send<T: Send + 'static>() {}
        reader::<ExecStdout>();
        writer::<ExecStdin>();
        guard::<(SshConnection, ExecControl)>();
        guard::<ExitWatch>();
        send::<ExecChannel>();
        send::<SshClient>();
    }

    #[test]
    fn short_commands() {
        assert_eq!(short_command("true"), "true");
        assert_eq!(short_command("a\nb"), "a…");
        assert_eq!(short_command(&"x".repeat(100)).chars().count(), 81);
    }
}
