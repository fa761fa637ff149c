//! The typed configuration read from WORKFLOW.md (front matter keys and their defaults) and the
//! workflow file as a whole (config + prompt template).
//!
//! Loading, validation and `$VAR`/`~` expansion live in `config/load.rs`; the strict Liquid prompt in
//! `config/template.rs`; hot reload in `config/watch.rs`; comment-preserving writes in `config/edit.rs`.
//! `config/front_matter.rs` splits the file into YAML and body; `config/outline.rs` is the line model
//! of block YAML that the loader (to point at a key's line) and the editor (to change only a key's
//! lines) share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use itervox_protocol::api::ModelOption;
use itervox_protocol::worker::{Backend, PermissionMode};

pub mod edit;
pub mod front_matter;
pub mod load;
mod outline;
pub mod template;
pub mod watch;

pub use edit::{Edit, EditError, EditOutcome, apply_edits};
pub use load::{ConfigError, Location, load_workflow, parse_workflow};
pub use template::{HumanReply, PromptExtras, PromptTemplate, TemplateError, assemble_prompt, default_prompt};
pub use watch::{WatchEvent, WatchHandle, spawn_watcher};

/// The hash of a workflow file's bytes that the loader records, the editor returns and the watcher
/// compares (the first 8 bytes of its SHA-256, so it is stable across builds).
pub fn content_hash(bytes: &[u8]) -> u64 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A loaded WORKFLOW.md: where it is, its typed configuration and its prompt template.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    /// Absolute path of the file.
    pub path: PathBuf,
    pub config: Config,
    /// The Liquid prompt body (everything after the front matter), as written.
    pub prompt_template: String,
    /// Hash of the file's bytes when it was read; the watcher compares against it.
    pub content_hash: u64,
}

impl Workflow {
    /// The folder holding WORKFLOW.md; relative paths in the file are relative to it.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The prompt template for a run: the profile's `prompt` when the run uses a profile that has one,
    /// else the file's body, else the built-in default prompt. Loading already checked that these parse.
    pub fn prompt_for(&self, profile: Option<&str>) -> Result<template::PromptTemplate, template::TemplateError> {
        let profile_prompt = profile
            .and_then(|name| self.config.agent.profiles.get(name))
            .and_then(|p| p.prompt.as_deref());
        match profile_prompt {
            Some(prompt) => template::PromptTemplate::parse(prompt),
            None => template::PromptTemplate::for_body(&self.prompt_template),
        }
    }
}

/// Every key of the front matter, typed, with defaults applied and `$VAR`/`~` expanded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub tracker: TrackerConfig,
    pub polling: PollingConfig,
    pub agent: AgentConfig,
    pub ssh: SshConfig,
    pub workspace: WorkspaceConfig,
    pub hooks: HooksConfig,
    pub server: ServerConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrackerKind {
    #[default]
    Local,
    Memory,
    Linear,
    Github,
}

impl TrackerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackerKind::Local => "local",
            TrackerKind::Memory => "memory",
            TrackerKind::Linear => "linear",
            TrackerKind::Github => "github",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    pub kind: TrackerKind,
    /// Linear / GitHub token (after `$VAR` expansion); `None` when empty.
    pub api_key: Option<String>,
    /// GitHub: `owner/repo`; Linear: default project filter slug; local: identifier prefix (`ITX`).
    pub project_slug: String,
    /// API base override (GitHub Enterprise, tests). `None` = the service's public endpoint.
    pub endpoint: Option<String>,
    /// Local tracker folder (absolute after loading; default `.itervox/issues` next to WORKFLOW.md).
    pub issues_dir: PathBuf,
    pub active_states: Vec<String>,
    pub terminal_states: Vec<String>,
    pub backlog_states: Vec<String>,
    /// Set on dispatch; `None` = don't move.
    pub working_state: Option<String>,
    /// Set on success; `None` = don't move.
    pub completion_state: Option<String>,
    /// Set when retries are exhausted; `None` = pause instead.
    pub failed_state: Option<String>,
    /// Linear project filter: `None` = default (`project_slug`), `Some([])` = all projects.
    pub project_filter: Option<Vec<String>>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            kind: TrackerKind::Local,
            api_key: None,
            project_slug: String::new(),
            endpoint: None,
            issues_dir: PathBuf::from(".itervox/issues"),
            active_states: vec!["Todo".into(), "In Progress".into()],
            terminal_states: ["Done", "Closed", "Cancelled", "Canceled", "Duplicate"]
                .map(String::from)
                .to_vec(),
            backlog_states: vec!["Backlog".into()],
            working_state: Some("In Progress".into()),
            completion_state: None,
            failed_state: None,
            project_filter: None,
        }
    }
}

impl TrackerConfig {
    /// Case-insensitive membership in `active_states`.
    pub fn is_active(&self, state: &str) -> bool {
        self.active_states.iter().any(|s| s.eq_ignore_ascii_case(state))
    }

    /// Case-insensitive membership in `terminal_states`.
    pub fn is_terminal(&self, state: &str) -> bool {
        self.terminal_states.iter().any(|s| s.eq_ignore_ascii_case(state))
    }

    /// Case-insensitive membership in `backlog_states`.
    pub fn is_backlog(&self, state: &str) -> bool {
        self.backlog_states.iter().any(|s| s.eq_ignore_ascii_case(state))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PollingConfig {
    pub interval_ms: u64,
    /// Share of the tracker's request budget kept for writes (0 disables the reserve).
    pub rate_limit_reserve_percent: u32,
}

impl Default for PollingConfig {
    fn default() -> Self {
        PollingConfig {
            interval_ms: 30_000,
            rate_limit_reserve_percent: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AgentMode {
    #[default]
    Solo,
    Subagents,
    Teams,
}

impl AgentMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentMode::Solo => "solo",
            AgentMode::Subagents => "subagents",
            AgentMode::Teams => "teams",
        }
    }

    pub fn parse(s: &str) -> Option<AgentMode> {
        match s {
            "solo" => Some(AgentMode::Solo),
            "subagents" => Some(AgentMode::Subagents),
            "teams" => Some(AgentMode::Teams),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DispatchStrategy {
    #[default]
    RoundRobin,
    LeastLoaded,
}

impl DispatchStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            DispatchStrategy::RoundRobin => "round-robin",
            DispatchStrategy::LeastLoaded => "least-loaded",
        }
    }

    pub fn parse(s: &str) -> Option<DispatchStrategy> {
        match s {
            "round-robin" => Some(DispatchStrategy::RoundRobin),
            "least-loaded" => Some(DispatchStrategy::LeastLoaded),
            _ => None,
        }
    }
}

/// A named agent profile (`agent.profiles.<name>`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    pub command: String,
    /// Replaces the prompt body for runs of this profile.
    pub prompt: Option<String>,
    pub backend: Option<Backend>,
    pub enabled: bool,
    pub permission_mode: Option<PermissionMode>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub command: String,
    /// Explicit backend; `None` = inferred from the command.
    pub backend: Option<Backend>,
    pub agent_mode: AgentMode,
    pub max_concurrent_agents: u32,
    /// Lower-cased state → cap; invalid entries are ignored at load.
    pub max_concurrent_agents_by_state: BTreeMap<String, u32>,
    pub max_turns: u32,
    pub turn_timeout_ms: u64,
    pub read_timeout_ms: u64,
    /// `<= 0` disables stall detection.
    pub stall_timeout_ms: i64,
    /// 0 = unlimited.
    pub max_retries: u32,
    pub max_retry_backoff_ms: u64,
    pub inline_input: bool,
    /// Host strings `[user@]host[:port]`, in configured order.
    pub ssh_hosts: Vec<String>,
    pub ssh_host_descriptions: BTreeMap<String, String>,
    pub dispatch_strategy: DispatchStrategy,
    /// 0 = no per-host cap.
    pub max_concurrent_agents_per_host: u32,
    pub profiles: BTreeMap<String, Profile>,
    pub reviewer_profile: Option<String>,
    pub auto_review: bool,
    pub available_models: BTreeMap<String, Vec<ModelOption>>,
    pub permission_mode: PermissionMode,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            command: "claude".into(),
            backend: None,
            agent_mode: AgentMode::Solo,
            max_concurrent_agents: 10,
            max_concurrent_agents_by_state: BTreeMap::new(),
            max_turns: 20,
            turn_timeout_ms: 3_600_000,
            read_timeout_ms: 30_000,
            stall_timeout_ms: 300_000,
            max_retries: 5,
            max_retry_backoff_ms: 300_000,
            inline_input: false,
            ssh_hosts: Vec::new(),
            ssh_host_descriptions: BTreeMap::new(),
            dispatch_strategy: DispatchStrategy::RoundRobin,
            max_concurrent_agents_per_host: 0,
            profiles: BTreeMap::new(),
            reviewer_profile: None,
            auto_review: false,
            available_models: BTreeMap::new(),
            permission_mode: PermissionMode::Bypass,
        }
    }
}

/// Infers the backend from a command line: its program's file name `claude` or `codex`; anything else
/// (including `itervox-worker demo-agent`) is `demo` only when it names the demo agent, else `claude`.
pub fn infer_backend(command: &str) -> Backend {
    let program = command.split_whitespace().next().unwrap_or("");
    let name = Path::new(program).file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name == "codex" {
        Backend::Codex
    } else if command.split_whitespace().any(|w| w == "demo-agent") {
        Backend::Demo
    } else {
        Backend::Claude
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HostKeyPolicy {
    /// Unknown or changed keys are refused.
    Yes,
    /// Unknown keys are recorded in known_hosts; changed keys are refused.
    #[default]
    AcceptNew,
    /// Any key is accepted (logged as a warning).
    No,
}

impl HostKeyPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            HostKeyPolicy::Yes => "yes",
            HostKeyPolicy::AcceptNew => "accept-new",
            HostKeyPolicy::No => "no",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SshConfig {
    /// Default login user; `None` = the controller's user.
    pub user: Option<String>,
    /// Private key (absolute after `~` expansion); `None` with `use_agent`.
    pub identity_file: Option<PathBuf>,
    /// Environment variable that holds the key's passphrase.
    pub identity_passphrase_env: Option<String>,
    pub use_agent: bool,
    pub known_hosts: PathBuf,
    pub strict_host_key_checking: HostKeyPolicy,
    pub connect_timeout_ms: u64,
    pub keepalive_interval_ms: u64,
    pub host_lost_after_ms: u64,
    /// Path (or name on PATH) of the worker binary on hosts.
    pub worker_path: String,
    pub install_worker: bool,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            user: None,
            identity_file: Some(PathBuf::from("~/.ssh/id_ed25519")),
            identity_passphrase_env: None,
            use_agent: false,
            known_hosts: PathBuf::from("~/.ssh/known_hosts"),
            strict_host_key_checking: HostKeyPolicy::AcceptNew,
            connect_timeout_ms: 10_000,
            keepalive_interval_ms: 15_000,
            host_lost_after_ms: 120_000,
            worker_path: "itervox-worker".into(),
            install_worker: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceConfig {
    /// Root on each host, as written (`~` is expanded by the worker on its own host).
    pub root: String,
    /// Clone URL or path the worktrees come from; default: the repository holding WORKFLOW.md.
    pub repo: String,
    pub base_branch: String,
    pub auto_clear: bool,
}

impl Default for WorkspaceConfig {
    fn default() -> Self {
        WorkspaceConfig {
            root: "~/.itervox/workspaces".into(),
            repo: String::new(),
            base_branch: "main".into(),
            auto_clear: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HooksConfig {
    pub after_create: Option<String>,
    pub before_run: Option<String>,
    pub after_run: Option<String>,
    pub before_remove: Option<String>,
    pub timeout_ms: u64,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            after_create: None,
            before_run: None,
            after_run: None,
            before_remove: None,
            timeout_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub host: String,
    /// 0 = ephemeral.
    pub port: u16,
    pub allow_unauthenticated: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8090,
            allow_unauthenticated: false,
        }
    }
}
