//! `SshLab`: simulated build hosts, each a real OpenSSH `sshd` on its own loopback address
//! (127.0.0.2, 127.0.0.3, …) with its own host key, authorized_keys and HOME, plus the client keys and
//! known_hosts file a controller uses to reach them.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let lab = itervox_tests::sshd::SshLab::new()?;
//! let host = lab.start_host("127.0.0.2")?;      // root@127.0.0.2:<free port>
//! let ssh = lab.ssh_config();                    // identity = the lab's client key
//! # Ok(()) }
//! ```
//!
//! Every host logs in as root (sshd must run as root), but its sessions get `HOME=<host dir>/home`
//! through `SetEnv` in its sshd_config, so `~/.itervox/workspaces` differs per host. Readiness is
//! checked by reading the SSH banner from the port, never by sleeping. Dropping a host kills its
//! listener, its per-connection sshd processes and every process started under its HOME.
//!
//! Needs `/usr/sbin/sshd`, `ssh-keygen` and `/run/sshd` (scripts/test.sh installs and creates them;
//! the fixture creates `/run/sshd` itself when running as root). Missing pieces are an error naming
//! the fix, never a silent skip.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use itervox::config::{HostKeyPolicy, SshConfig};
use itervox::hosts::host_spec::HostSpec;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// OpenSSH's server binary; an absolute path is required because sshd re-executes itself.
pub const SSHD: &str = "/usr/sbin/sshd";
/// How long starting, stopping and readiness checks may take before the fixture gives up.
const PATIENCE: Duration = Duration::from_secs(20);

/// A client key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ed25519,
    Ecdsa,
    Rsa,
}

impl KeyKind {
    fn keygen_args(self) -> &'static [&'static str] {
        match self {
            KeyKind::Ed25519 => &["-t", "ed25519"],
            KeyKind::Ecdsa => &["-t", "ecdsa", "-b", "256"],
            KeyKind::Rsa => &["-t", "rsa", "-b", "2048"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ed25519",
            KeyKind::Ecdsa => "ecdsa",
            KeyKind::Rsa => "rsa",
        }
    }
}

/// A client key pair made with `ssh-keygen`.
#[derive(Debug, Clone)]
pub struct ClientKey {
    pub kind: KeyKind,
    /// The private key file (OpenSSH format).
    pub private_key: PathBuf,
    /// `<type> <base64> <comment>`, as in the `.pub` file.
    pub public_line: String,
    pub passphrase: Option<String>,
}

#[derive(Debug)]
struct LabDir {
    dir: tempfile::TempDir,
}

/// Keys, known_hosts and the hosts' folders of one test.
#[derive(Debug)]
pub struct SshLab {
    root: Arc<LabDir>,
    client_key: ClientKey,
    known_hosts: PathBuf,
}

impl SshLab {
    /// Checks the prerequisites and makes the lab's ed25519 client key. Its known_hosts file starts
    /// out missing (see [`SshLab::trust`]).
    pub fn new() -> anyhow::Result<SshLab> {
        check_prerequisites()?;
        let dir = tempfile::Builder::new()
            .prefix("itervox-sshlab-")
            .tempdir()
            .context("creating the lab's temporary folder")?;
        let root = Arc::new(LabDir { dir });
        let known_hosts = root.dir.path().join("known_hosts");
        let mut lab = SshLab {
            root,
            client_key: ClientKey {
                kind: KeyKind::Ed25519,
                private_key: PathBuf::new(),
                public_line: String::new(),
                passphrase: None,
            },
            known_hosts,
        };
        lab.client_key = lab.make_key_named("client_ed25519", KeyKind::Ed25519, None)?;
        Ok(lab)
    }

    /// The lab's folder.
    pub fn dir(&self) -> &Path {
        self.root.dir.path()
    }

    /// The key every host started by this lab authorizes.
    pub fn client_key(&self) -> &ClientKey {
        &self.client_key
    }

    /// The known_hosts file of [`SshLab::ssh_config`].
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// Makes another client key (not authorized anywhere until [`SshHost::authorize`]), encrypted
    /// with `passphrase` when given.
    pub fn make_key(&self, kind: KeyKind, passphrase: Option<&str>) -> anyhow::Result<ClientKey> {
        let name = format!("client_{}_{}", kind.name(), uuid::Uuid::new_v4().simple());
        self.make_key_named(&name, kind, passphrase)
    }

    fn make_key_named(&self, name: &str, kind: KeyKind, passphrase: Option<&str>) -> anyhow::Result<ClientKey> {
        let path = self.dir().join(name);
        keygen(
            &path,
            kind.keygen_args(),
            passphrase.unwrap_or(""),
            &format!("itervox-lab-{name}"),
        )?;
        let public_line = fs_err::read_to_string(path.with_extension("pub"))?.trim().to_string();
        Ok(ClientKey {
            kind,
            private_key: path,
            public_line,
            passphrase: passphrase.map(str::to_string),
        })
    }

    /// The `ssh:` settings a controller uses to reach this lab's hosts: user root, the lab's client key,
    /// the lab's known_hosts with `accept-new`, generous timeouts for a loaded machine.
    pub fn ssh_config(&self) -> SshConfig {
        SshConfig {
            user: Some("root".into()),
            identity_file: Some(self.client_key.private_key.clone()),
            identity_passphrase_env: None,
            use_agent: false,
            known_hosts: self.known_hosts.clone(),
            strict_host_key_checking: HostKeyPolicy::AcceptNew,
            connect_timeout_ms: 20_000,
            keepalive_interval_ms: 15_000,
            host_lost_after_ms: 120_000,
            worker_path: "itervox-worker".into(),
            install_worker: false,
        }
    }

    /// Records `host`'s current key in the lab's known_hosts file.
    pub fn trust(&self, host: &SshHost) -> anyhow::Result<()> {
        let mut file = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.known_hosts)?;
        writeln!(file, "{}", host.known_hosts_line())?;
        Ok(())
    }

    /// Starts a host on `addr` (a 127.x.y.z address) on a free port, authorizing the lab's client key.
    pub fn start_host(&self, addr: &str) -> anyhow::Result<SshHost> {
        let addr: Ipv4Addr = addr
            .parse()
            .with_context(|| format!("{addr:?} is not an IPv4 address"))?;
        if !addr.is_loopback() {
            bail!("lab hosts listen on loopback addresses only (127.0.0.0/8), not {addr}");
        }
        let dir = self
            .dir()
            .join(format!("host-{addr}-{}", uuid::Uuid::new_v4().simple()));
        let home = dir.join("home");
        fs_err::create_dir_all(&home)?;
        let host_key = dir.join("ssh_host_ed25519_key");
        keygen(&host_key, &["-t", "ed25519"], "", &format!("lab-host-{addr}"))?;
        fs_err::write(
            dir.join("authorized_keys"),
            format!("{}\n", self.client_key.public_line),
        )?;
        let mut host = SshHost {
            _lab: self.root.clone(),
            addr,
            port: 0,
            dir,
            home,
            host_key,
            child: None,
            orphaned: Vec::new(),
        };
        host.start_on_free_port()?;
        Ok(host)
    }
}

/// One simulated build host: an `sshd` listener and everything it started.
#[derive(Debug)]
pub struct SshHost {
    _lab: Arc<LabDir>,
    addr: Ipv4Addr,
    port: u16,
    dir: PathBuf,
    home: PathBuf,
    host_key: PathBuf,
    child: Option<Child>,
    /// Per-connection sshd processes whose listener [`SshHost::stop_listener`] killed.
    orphaned: Vec<i32>,
}

impl SshHost {
    /// `root@127.0.0.2:PORT`.
    pub fn spec(&self) -> String {
        format!("root@{}:{}", self.addr, self.port)
    }

    /// [`SshHost::spec`] parsed.
    pub fn host_spec(&self) -> HostSpec {
        HostSpec {
            user: Some("root".into()),
            host: self.addr.to_string(),
            port: self.port,
        }
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The HOME of this host's sessions.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The host's folder (config, keys, log, home).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The host's public key: `ssh-ed25519 AAAA…`.
    pub fn host_public_key(&self) -> String {
        let text = fs_err::read_to_string(self.host_key.with_extension("pub")).unwrap_or_default();
        text.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    }

    /// The host's known_hosts line: `[127.0.0.2]:PORT ssh-ed25519 AAAA…`.
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}", self.addr, self.port, self.host_public_key())
    }

    /// Adds `key` to the host's authorized_keys (effective for the next connection).
    pub fn authorize(&self, key: &ClientKey) -> anyhow::Result<()> {
        let mut file = fs_err::OpenOptions::new()
            .append(true)
            .open(self.dir.join("authorized_keys"))?;
        writeln!(file, "{}", key.public_line)?;
        Ok(())
    }

    /// sshd's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs_err::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Whether the listener is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts the listener again on the same address, port and host key (after [`SshHost::stop`]).
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.spawn_and_wait_ready() {
                Ok(()) => return Ok(()),
                Err(StartError::PortInUse) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(StartError::PortInUse) => {
                    bail!(
                        "port {} on {} stayed in use for {PATIENCE:?}; cannot restart sshd there",
                        self.port,
                        self.addr
                    )
                }
                Err(StartError::Other(e)) => return Err(e),
            }
        }
    }

    fn start_on_free_port(&mut self) -> anyhow::Result<()> {
        for _ in 0..10 {
            self.port = free_port(self.addr)?;
            match self.spawn_and_wait_ready() {
                Ok(()) => return Ok(()),
                Err(StartError::PortInUse) => continue,
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        bail!("could not find a free port for sshd on {} in 10 tries", self.addr)
    }

    fn write_config(&self) -> anyhow::Result<PathBuf> {
        let d = self.dir.display();
        let config = format!(
            "# sshd for one simulated Itervox build host (written by itervox-tests).\n\
             Port {port}\n\
             ListenAddress {addr}\n\
             HostKey {key}\n\
             PidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             StrictModes no\n\
             UsePAM no\n\
             UseDNS no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             MaxSessions 10\n\
             MaxStartups 100:30:200\n\
             LogLevel VERBOSE\n\
             SetEnv HOME={home}\n",
            port = self.port,
            addr = self.addr,
            key = self.host_key.display(),
            home = self.home.display(),
        );
        let path = self.dir.join("sshd_config");
        fs_err::write(&path, config)?;
        Ok(path)
    }

    fn spawn_and_wait_ready(&mut self) -> Result<(), StartError> {
        let config = self.write_config()?;
        let log = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("sshd.log"))
            .map_err(anyhow::Error::from)?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log.into_file()))
            .spawn()
            .with_context(|| format!("starting {SSHD}"))?;
        let deadline = Instant::now() + PATIENCE;
        let addr = SocketAddr::from((self.addr, self.port));
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = self.log();
                let new_log = log.get(log_start as usize..).unwrap_or(&log).to_string();
                if new_log.contains("Address already in use") {
                    return Err(StartError::PortInUse);
                }
                return Err(StartError::Other(anyhow::anyhow!(
                    "sshd on {addr} exited at start ({status}); its log:\n{new_log}"
                )));
            }
            if banner_ready(addr) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartError::Other(anyhow::anyhow!(
                    "sshd on {addr} did not answer within {PATIENCE:?}; its log:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the listener and its per-connection sshd processes and reaps them; commands started by
    /// those connections are left alone (they see their channel close), like an sshd crash would.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let listener = child.id() as i32;
        let sshds: Vec<i32> = descendants(listener)
            .into_iter()
            .filter(|&pid| process_name(pid).as_deref() == Some("sshd"))
            .collect();
        signal_all(&sshds, Signal::SIGKILL);
        let _ = kill(Pid::from_raw(listener), Signal::SIGKILL);
        child.wait().context("reaping sshd")?;
        wait_gone(&sshds)
    }

    /// Kills only the listener, leaving the per-connection sshd processes (and what they run) alone: new
    /// connections are refused while open ones go on (or stay frozen). [`SshHost::start`] brings the
    /// listener back on the same port.
    pub fn stop_listener(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let connections = self.connection_processes();
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        child.wait().context("reaping sshd")?;
        self.orphaned.extend(connections);
        Ok(())
    }

    /// Kills everything this host ever started: listener, connections, their commands, and detached
    /// processes that still carry this host's HOME (like a host losing power).
    pub fn kill_everything(&mut self) -> anyhow::Result<()> {
        let mut pids: HashSet<i32> = HashSet::new();
        if let Some(child) = &self.child {
            pids.extend(descendants(child.id() as i32));
        }
        pids.extend(processes_with_home(&self.home));
        pids.extend(self.connection_processes());
        let pids: Vec<i32> = pids.into_iter().collect();
        signal_all(&pids, Signal::SIGKILL);
        self.stop()?;
        wait_gone(&pids)
    }

    /// The per-connection sshd processes (children of the listener, and theirs).
    pub fn connection_processes(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = match &self.child {
            Some(child) => descendants(child.id() as i32)
                .into_iter()
                .filter(|&pid| process_name(pid).as_deref() == Some("sshd"))
                .collect(),
            None => Vec::new(),
        };
        for &pid in &self.orphaned {
            if !pids.contains(&pid) && process_name(pid).as_deref() == Some("sshd") {
                pids.push(pid);
            }
        }
        pids
    }

    /// Stops (SIGSTOP) every per-connection sshd process: open connections go silent without closing,
    /// like a network cut. New connections are still accepted. Returns how many processes were frozen.
    pub fn freeze_connections(&self) -> usize {
        let pids = self.connection_processes();
        signal_all(&pids, Signal::SIGSTOP);
        pids.len()
    }

    /// Resumes (SIGCONT) the processes [`SshHost::freeze_connections`] stopped.
    pub fn thaw_connections(&self) -> usize {
        let pids = self.connection_processes();
        signal_all(&pids, Signal::SIGCONT);
        pids.len()
    }

    /// Replaces the host key with a new one and restarts the listener (same address and port), so
    /// that clients see a changed key. Returns the new public key.
    pub fn rotate_host_key(&mut self) -> anyhow::Result<String> {
        let was_running = self.is_running();
        self.stop()?;
        fs_err::remove_file(&self.host_key)?;
        fs_err::remove_file(self.host_key.with_extension("pub"))?;
        keygen(
            &self.host_key,
            &["-t", "ed25519"],
            "",
            &format!("lab-host-{}-rotated", self.addr),
        )?;
        if was_running {
            self.start()?;
        }
        Ok(self.host_public_key())
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        let _ = self.kill_everything();
    }
}

enum StartError {
    PortInUse,
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        StartError::Other(e)
    }
}

fn check_prerequisites() -> anyhow::Result<()> {
    if !Path::new(SSHD).exists() {
        bail!(
            "{SSHD} is missing: the SSH tests need OpenSSH's server; run scripts/test.sh (it installs openssh-server)"
        );
    }
    if which("ssh-keygen").is_none() {
        bail!("ssh-keygen is missing: run scripts/test.sh (it installs openssh-client)");
    }
    let run_sshd = Path::new("/run/sshd");
    if !run_sshd.is_dir() {
        if nix::unistd::geteuid().is_root() {
            fs_err::create_dir_all(run_sshd)?;
        } else {
            bail!(
                "/run/sshd (sshd's privilege separation folder) is missing: run scripts/test.sh as root or with sudo"
            );
        }
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("the SSH lab runs sshd as root to log in as root: run the tests as root (scripts/test.sh in CI does)");
    }
    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn keygen(path: &Path, type_args: &[&str], passphrase: &str, comment: &str) -> anyhow::Result<()> {
    let out = Command::new("ssh-keygen")
        .arg("-q")
        .args(type_args)
        .arg("-N")
        .arg(passphrase)
        .arg("-C")
        .arg(comment)
        .arg("-f")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .context("running ssh-keygen")?;
    if !out.status.success() {
        bail!(
            "ssh-keygen for {} failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A port that was free on `addr` a moment ago (bound to port 0, then released).
fn free_port(addr: Ipv4Addr) -> anyhow::Result<u16> {
    let listener = TcpListener::bind((addr, 0)).with_context(|| format!("binding {addr}:0"))?;
    Ok(listener.local_addr()?.port())
}

/// Whether an SSH server answers on `addr` (reads its version banner).
fn banner_ready(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while got.len() < 8 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.starts_with(b"SSH-2.0-")
}

/// The process table as pid → (parent pid, name), from /proc.
fn process_table() -> HashMap<i32, (i32, String)> {
    let mut table = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return table;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().unwrap_or("");
        if state == "Z" || state == "X" {
            continue;
        }
        if let Some(ppid) = rest.next().and_then(|s| s.parse::<i32>().ok()) {
            table.insert(pid, (ppid, name));
        }
    }
    table
}

/// Every live descendant of `root`.
fn descendants(root: i32) -> Vec<i32> {
    let table = process_table();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, &(ppid, _)) in &table {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            out.push(child);
            stack.push(child);
        }
    }
    out
}

fn process_name(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    Some(stat[open + 1..close].to_string())
}

/// Live processes whose environment has `HOME=<home>`.
fn processes_with_home(home: &Path) -> Vec<i32> {
    let needle = format!("HOME={}", home.display()).into_bytes();
    process_table()
        .into_keys()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|var| var == needle.as_slice()))
                .unwrap_or(false)
        })
        .collect()
}

fn signal_all(pids: &[i32], signal: Signal) {
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Waits until none of `pids` is alive (zombies count as gone: their parent reaps them).
fn wait_gone(pids: &[i32]) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let table = process_table();
        let alive: Vec<i32> = pids.iter().copied().filter(|p| table.contains_key(p)).collect();
        if alive.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("processes {alive:?} still alive {PATIENCE:?} after SIGKILL");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private `ssh-agent` on its own socket in the lab, holding the keys given to [`SshAgent::add`].
#[derive(Debug)]
pub struct SshAgent {
    socket: PathBuf,
    child: Child,
}

impl SshAgent {
    /// Starts `ssh-agent -D -a <lab>/agent-<id>.sock` and waits until its socket exists.
    pub fn start(lab: &SshLab) -> anyhow::Result<SshAgent> {
        let socket = lab.dir().join(format!("agent-{}.sock", uuid::Uuid::new_v4().simple()));
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting ssh-agent (package openssh-client)")?;
        let mut agent = SshAgent { socket, child };
        let deadline = Instant::now() + PATIENCE;
        while !agent.socket.exists() {
            if let Ok(Some(status)) = agent.child.try_wait() {
                bail!("ssh-agent exited at start ({status})");
            }
            if Instant::now() > deadline {
                bail!(
                    "ssh-agent did not create {} within {PATIENCE:?}",
                    agent.socket.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(agent)
    }

    /// The agent's socket (what `SSH_AUTH_SOCK` would hold).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Loads an unencrypted key into the agent with `ssh-add`.
    pub fn add(&self, key: &ClientKey) -> anyhow::Result<()> {
        let out = Command::new("ssh-add")
            .arg(&key.private_key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdin(Stdio::null())
            .output()
            .context("running ssh-add")?;
        if !out.status.success() {
            bail!(
                "ssh-add {} failed: {}",
                key.private_key.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
