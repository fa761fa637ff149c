//! Key-aware reading of the front matter's value tree into [`Config`]: every accessor knows the key
//! path it reads, expands `$VAR` scalars, and reports a bad value with its dotted key and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use itervox_protocol::api::ModelOption;
use itervox_protocol::worker::{Backend, PermissionMode};
use yaml_serde::Value;

use super::{ConfigError, Location, git_toplevel, normalize};
use crate::config::outline::Outline;
use crate::config::template::PromptTemplate;
use crate::config::{
    AgentConfig, AgentMode, Config, DispatchStrategy, HooksConfig, HostKeyPolicy, PollingConfig, Profile, ServerConfig,
    SshConfig, TrackerConfig, TrackerKind, WorkspaceConfig,
};

/// Reads one parsed front matter.
pub(super) struct Reader<'a> {
    pub file: &'a Path,
    /// The folder holding the file; relative paths resolve against it.
    pub dir: &'a Path,
    /// The front matter's text outline, to find the line of a key.
    pub outline: Outline<'a>,
    /// Lines of the file before the front matter's first line.
    pub line_offset: usize,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// A value in the tree and the key path that leads to it; `value` is `None` when the key is absent.
#[derive(Clone)]
struct Node<'v> {
    path: Vec<String>,
    value: Option<&'v Value>,
}

impl<'v> Node<'v> {
    fn get(&self, key: &str) -> Node<'v> {
        let value = match self.value {
            Some(Value::Mapping(map)) => map
                .iter()
                .find(|(k, _)| scalar_text(k).as_deref() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        };
        self.child(key.to_string(), value)
    }

    fn child(&self, segment: String, value: Option<&'v Value>) -> Node<'v> {
        let mut path = self.path.clone();
        path.push(segment);
        Node { path, value }
    }

    fn is_set(&self) -> bool {
        !matches!(self.value, None | Some(Value::Null))
    }
}

/// A string read from the file, with the environment variable it came from when it was `$NAME`.
struct Text {
    value: String,
    var: Option<String>,
}

impl Text {
    fn describe(&self) -> String {
        match &self.var {
            Some(var) => format!("{:?} (from ${var})", self.value),
            None => format!("{:?}", self.value),
        }
    }
}

/// Joins a key path for messages: `agent.profiles.review.command`, `agent.ssh_hosts[2]`.
pub(crate) fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if !segment.starts_with('[') && !out.is_empty() {
            out.push('.');
        }
        out.push_str(segment);
    }
    out
}

/// How a value is shown after "got".
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a map".into(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

/// The text of a scalar key or value.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Reader<'_> {
    /// The whole configuration, defaults filled in.
    pub fn config(&self, root: &Value) -> Result<Config, ConfigError> {
        let root = Node {
            path: Vec::new(),
            value: Some(root),
        };
        let mut config = Config::default();
        self.tracker(&root.get("tracker"), &mut config.tracker)?;
        self.polling(&root.get("polling"), &mut config.polling)?;
        self.agent(&root.get("agent"), &mut config.agent)?;
        self.ssh(&root.get("ssh"), &mut config.ssh)?;
        self.workspace(&root.get("workspace"), &mut config.workspace)?;
        self.hooks(&root.get("hooks"), &mut config.hooks)?;
        self.server(&root.get("server"), &mut config.server)?;
        Ok(config)
    }

    fn tracker(&self, n: &Node<'_>, t: &mut TrackerConfig) -> Result<(), ConfigError> {
        self.section(n)?;
        let kind_node = n.get("kind");
        if let Some(kind) = self.text(&kind_node)? {
            t.kind = match kind.value.trim().to_ascii_lowercase().as_str() {
                "local" => TrackerKind::Local,
                "memory" => TrackerKind::Memory,
                "linear" => TrackerKind::Linear,
                "github" => TrackerKind::Github,
                _ => {
                    return Err(ConfigError::UnsupportedTracker {
                        path: self.file.to_path_buf(),
                        location: self.locate(&kind_node.path),
                        kind: kind.value,
                    });
                }
            };
        }
        let key_node = n.get("api_key");
        let api_key = self.text(&key_node)?;
        t.api_key = api_key
            .as_ref()
            .map(|k| k.value.trim().to_string())
            .filter(|k| !k.is_empty());
        if let Some(slug) = self.string(&n.get("project_slug"))? {
            t.project_slug = slug.trim().to_string();
        }
        if let Some(endpoint) = self.string(&n.get("endpoint"))? {
            t.endpoint = Some(endpoint.trim().to_string()).filter(|e| !e.is_empty());
        }
        if let Some(dir) = self.string(&n.get("issues_dir"))?.filter(|d| !d.trim().is_empty()) {
            t.issues_dir = PathBuf::from(dir.trim());
        }
        t.issues_dir = self.local_path(&t.issues_dir.to_string_lossy());
        for (key, slot) in [
            ("active_states", &mut t.active_states),
            ("terminal_states", &mut t.terminal_states),
            ("backlog_states", &mut t.backlog_states),
        ] {
            if let Some(states) = self.string_list(&n.get(key))? {
                *slot = states;
            }
        }
        for (key, slot) in [
            ("working_state", &mut t.working_state),
            ("completion_state", &mut t.completion_state),
            ("failed_state", &mut t.failed_state),
        ] {
            if let Some(state) = self.string(&n.get(key))? {
                *slot = Some(state.trim().to_string()).filter(|s| !s.is_empty());
            }
        }
        let filter = n.get("project_filter");
        if filter.is_set() {
            t.project_filter = self.string_list(&filter)?;
        }

        match t.kind {
            TrackerKind::Linear | TrackerKind::Github => {
                let default_var = if t.kind == TrackerKind::Linear {
                    "LINEAR_API_KEY"
                } else {
                    "GITHUB_TOKEN"
                };
                if t.api_key.is_none() && !key_node.is_set() {
                    t.api_key = (self.env)(default_var)
                        .map(|k| k.trim().to_string())
                        .filter(|k| !k.is_empty());
                }
                if t.api_key.is_none() {
                    let (env_var, referenced) = match api_key.and_then(|k| k.var) {
                        Some(var) => (var, true),
                        None => (default_var.to_string(), false),
                    };
                    let at = if key_node.is_set() { &key_node.path } else { &n.path };
                    return Err(ConfigError::MissingApiKey {
                        path: self.file.to_path_buf(),
                        location: self.locate(at),
                        tracker: t.kind.as_str().into(),
                        env_var,
                        referenced,
                    });
                }
            }
            TrackerKind::Local | TrackerKind::Memory => {}
        }
        if t.kind == TrackerKind::Github && !is_owner_repo(&t.project_slug) {
            return Err(self.error(
                &n.get("project_slug").path,
                format!(
                    "the github tracker needs the repository as `owner/repo`, got {:?}",
                    t.project_slug
                ),
            ));
        }
        if t.kind == TrackerKind::Local && t.project_slug.is_empty() {
            t.project_slug = "ITX".into();
        }
        Ok(())
    }

    fn polling(&self, n: &Node<'_>, p: &mut PollingConfig) -> Result<(), ConfigError> {
        self.section(n)?;
        if let Some(v) = self.uint(&n.get("interval_ms"), 1, u64::MAX)? {
            p.interval_ms = v;
        }
        if let Some(v) = self.uint(&n.get("rate_limit_reserve_percent"), 0, 100)? {
            p.rate_limit_reserve_percent = v as u32;
        }
        Ok(())
    }

    fn agent(&self, n: &Node<'_>, a: &mut AgentConfig) -> Result<(), ConfigError> {
        self.section(n)?;
        let command = n.get("command");
        if let Some(c) = self.string(&command)? {
            if c.trim().is_empty() {
                return Err(self.error(
                    &command.path,
                    "must name the agent CLI to run (e.g. `claude`), got \"\"",
                ));
            }
            a.command = c.trim().to_string();
        }
        a.backend = self.backend(&n.get("backend"))?;
        if let Some(mode) = self.choice(
            &n.get("agent_mode"),
            &[
                ("solo", AgentMode::Solo),
                ("subagents", AgentMode::Subagents),
                ("teams", AgentMode::Teams),
            ],
        )? {
            a.agent_mode = mode;
        }
        let u32_max = u64::from(u32::MAX);
        if let Some(v) = self.uint(&n.get("max_concurrent_agents"), 1, u32_max)? {
            a.max_concurrent_agents = v as u32;
        }
        a.max_concurrent_agents_by_state = self.caps_by_state(&n.get("max_concurrent_agents_by_state"))?;
        if let Some(v) = self.uint(&n.get("max_turns"), 1, u32_max)? {
            a.max_turns = v as u32;
        }
        if let Some(v) = self.uint(&n.get("turn_timeout_ms"), 1, u64::MAX)? {
            a.turn_timeout_ms = v;
        }
        if let Some(v) = self.uint(&n.get("read_timeout_ms"), 1, u64::MAX)? {
            a.read_timeout_ms = v;
        }
        if let Some(v) = self.int(&n.get("stall_timeout_ms"))? {
            a.stall_timeout_ms = v;
        }
        if let Some(v) = self.uint(&n.get("max_retries"), 0, u32_max)? {
            a.max_retries = v as u32;
        }
        if let Some(v) = self.uint(&n.get("max_retry_backoff_ms"), 0, u64::MAX)? {
            a.max_retry_backoff_ms = v;
        }
        if let Some(v) = self.boolean(&n.get("inline_input"))? {
            a.inline_input = v;
        }
        let hosts = n.get("ssh_hosts");
        if let Some(list) = self.string_list(&hosts)? {
            for (i, host) in list.iter().enumerate() {
                if let Err(why) = check_host(host) {
                    return Err(self.error(&hosts.child(format!("[{i}]"), None).path, why));
                }
            }
            a.ssh_hosts = list;
        }
        for (host, node) in self.entries(&n.get("ssh_host_descriptions"))? {
            let text = self.string(&node)?.unwrap_or_default();
            a.ssh_host_descriptions.insert(host, text);
        }
        if let Some(strategy) = self.choice(
            &n.get("dispatch_strategy"),
            &[
                ("round-robin", DispatchStrategy::RoundRobin),
                ("least-loaded", DispatchStrategy::LeastLoaded),
            ],
        )? {
            a.dispatch_strategy = strategy;
        }
        if let Some(v) = self.uint(&n.get("max_concurrent_agents_per_host"), 0, u32_max)? {
            a.max_concurrent_agents_per_host = v as u32;
        }
        for (name, node) in self.entries(&n.get("profiles"))? {
            let profile = self.profile(&node)?;
            a.profiles.insert(name, profile);
        }
        if let Some(reviewer) = self.string(&n.get("reviewer_profile"))? {
            a.reviewer_profile = Some(reviewer.trim().to_string()).filter(|r| !r.is_empty());
        }
        if let Some(reviewer) = &a.reviewer_profile
            && !a.profiles.contains_key(reviewer)
        {
            tracing::warn!(
                file = %self.file.display(),
                reviewer_profile = %reviewer,
                "agent.reviewer_profile names no profile in agent.profiles; reviews cannot run until it does"
            );
        }
        if let Some(v) = self.boolean(&n.get("auto_review"))? {
            a.auto_review = v;
        }
        for (backend, node) in self.entries(&n.get("available_models"))? {
            let models = self.models(&node)?;
            a.available_models.insert(backend, models);
        }
        if let Some(mode) = self.permission_mode(&n.get("permission_mode"))? {
            a.permission_mode = mode;
        }
        Ok(())
    }

    fn profile(&self, n: &Node<'_>) -> Result<Profile, ConfigError> {
        if !matches!(n.value, Some(Value::Mapping(_))) {
            let got = n.value.map(describe).unwrap_or_else(|| "nothing".into());
            return Err(self.error(&n.path, format!("expected a map with at least `command`, got {got}")));
        }
        let command_node = n.get("command");
        let command = self
            .string(&command_node)?
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| self.error(&command_node.path, "a profile needs a command (the agent CLI to run)"))?;
        let prompt_node = n.get("prompt");
        let prompt = self.string(&prompt_node)?.filter(|p| !p.trim().is_empty());
        if let Some(prompt) = &prompt {
            PromptTemplate::parse(prompt).map_err(|e| ConfigError::Template {
                path: self.file.to_path_buf(),
                location: self.locate(&prompt_node.path),
                key: dotted(&prompt_node.path),
                message: e.to_string(),
            })?;
        }
        Ok(Profile {
            command,
            prompt,
            backend: self.backend(&n.get("backend"))?,
            enabled: self.boolean(&n.get("enabled"))?.unwrap_or(true),
            permission_mode: self.permission_mode(&n.get("permission_mode"))?,
        })
    }

    fn models(&self, n: &Node<'_>) -> Result<Vec<ModelOption>, ConfigError> {
        let items = match n.value {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Sequence(items)) => items,
            Some(other) => {
                return Err(self.error(
                    &n.path,
                    format!("expected a list of {{id, label}}, got {}", describe(other)),
                ));
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let node = n.child(format!("[{i}]"), Some(item));
            let (id, label) = match item {
                Value::Mapping(_) => {
                    let id = self.string(&node.get("id"))?.unwrap_or_default();
                    let label = self.string(&node.get("label"))?;
                    (id, label)
                }
                _ => (self.string(&node)?.unwrap_or_default(), None),
            };
            if id.trim().is_empty() {
                return Err(self.error(&node.path, "a model needs an `id`"));
            }
            out.push(ModelOption {
                label: label.filter(|l| !l.trim().is_empty()).unwrap_or_else(|| id.clone()),
                id,
            });
        }
        Ok(out)
    }

    fn caps_by_state(&self, n: &Node<'_>) -> Result<BTreeMap<String, u32>, ConfigError> {
        let mut caps = BTreeMap::new();
        for (state, node) in self.entries(n)? {
            let key = state.trim().to_lowercase();
            match self.uint(&node, 1, u64::from(u32::MAX)) {
                Ok(Some(cap)) if !key.is_empty() => {
                    caps.insert(key, cap as u32);
                }
                _ => tracing::warn!(
                    file = %self.file.display(),
                    key = %dotted(&node.path),
                    value = %node.value.map(describe).unwrap_or_default(),
                    "Ignoring a per-state agent cap: expected a state name and a positive integer"
                ),
            }
        }
        Ok(caps)
    }

    fn ssh(&self, n: &Node<'_>, s: &mut SshConfig) -> Result<(), ConfigError> {
        self.section(n)?;
        if let Some(user) = self.string(&n.get("user"))? {
            s.user = Some(user.trim().to_string()).filter(|u| !u.is_empty());
        }
        if let Some(v) = self.boolean(&n.get("use_agent"))? {
            s.use_agent = v;
        }
        s.identity_file = match self.string(&n.get("identity_file"))? {
            Some(file) if file.trim().is_empty() => None,
            Some(file) => Some(self.local_path(file.trim())),
            None if s.use_agent => None,
            None => s.identity_file.as_ref().map(|f| self.local_path(&f.to_string_lossy())),
        };
        if let Some(var) = self.string(&n.get("identity_passphrase_env"))? {
            s.identity_passphrase_env = Some(var.trim().to_string()).filter(|v| !v.is_empty());
        }
        if let Some(file) = self.string(&n.get("known_hosts"))?.filter(|f| !f.trim().is_empty()) {
            s.known_hosts = PathBuf::from(file.trim());
        }
        s.known_hosts = self.local_path(&s.known_hosts.to_string_lossy());
        if let Some(policy) = self.choice(
            &n.get("strict_host_key_checking"),
            &[
                ("yes", HostKeyPolicy::Yes),
                ("accept-new", HostKeyPolicy::AcceptNew),
                ("no", HostKeyPolicy::No),
                ("true", HostKeyPolicy::Yes),
                ("false", HostKeyPolicy::No),
                ("off", HostKeyPolicy::No),
            ],
        )? {
            s.strict_host_key_checking = policy;
        }
        for (key, slot) in [
            ("connect_timeout_ms", &mut s.connect_timeout_ms),
            ("keepalive_interval_ms", &mut s.keepalive_interval_ms),
            ("host_lost_after_ms", &mut s.host_lost_after_ms),
        ] {
            if let Some(v) = self.uint(&n.get(key), 1, u64::MAX)? {
                *slot = v;
            }
        }
        let worker = n.get("worker_path");
        if let Some(path) = self.string(&worker)? {
            if path.trim().is_empty() {
                return Err(self.error(&worker.path, "must name the worker binary on hosts, got \"\""));
            }
            s.worker_path = path.trim().to_string();
        }
        if let Some(v) = self.boolean(&n.get("install_worker"))? {
            s.install_worker = v;
        }
        Ok(())
    }

    fn workspace(&self, n: &Node<'_>, w: &mut WorkspaceConfig) -> Result<(), ConfigError> {
        self.section(n)?;
        if let Some(root) = self.string(&n.get("root"))?.filter(|r| !r.trim().is_empty()) {
            w.root = root.trim().to_string();
        }
        if !w.root.starts_with(['/', '~', '$']) {
            w.root = normalize(&self.dir.join(&w.root)).to_string_lossy().into_owned();
        }
        let repo = self
            .string(&n.get("repo"))?
            .map(|r| r.trim().to_string())
            .unwrap_or_default();
        w.repo = if repo.is_empty() {
            match git_toplevel(self.dir) {
                Some(top) => top.to_string_lossy().into_owned(),
                None => {
                    tracing::warn!(
                        file = %self.file.display(),
                        "workspace.repo is empty and the workflow file is in no git repository; set workspace.repo"
                    );
                    String::new()
                }
            }
        } else if looks_like_url(&repo) || repo.starts_with(['/', '~']) {
            repo
        } else {
            normalize(&self.dir.join(&repo)).to_string_lossy().into_owned()
        };
        let base = n.get("base_branch");
        if let Some(branch) = self.string(&base)? {
            if branch.trim().is_empty() {
                return Err(self.error(&base.path, "must name a branch, got \"\""));
            }
            w.base_branch = branch.trim().to_string();
        }
        if let Some(v) = self.boolean(&n.get("auto_clear"))? {
            w.auto_clear = v;
        }
        Ok(())
    }

    fn hooks(&self, n: &Node<'_>, h: &mut HooksConfig) -> Result<(), ConfigError> {
        self.section(n)?;
        for (key, slot) in [
            ("after_create", &mut h.after_create),
            ("before_run", &mut h.before_run),
            ("after_run", &mut h.after_run),
            ("before_remove", &mut h.before_remove),
        ] {
            *slot = self.string(&n.get(key))?.filter(|s| !s.trim().is_empty());
        }
        if let Some(v) = self.uint(&n.get("timeout_ms"), 1, u64::MAX)? {
            h.timeout_ms = v;
        }
        Ok(())
    }

    fn server(&self, n: &Node<'_>, s: &mut ServerConfig) -> Result<(), ConfigError> {
        self.section(n)?;
        let host = n.get("host");
        if let Some(h) = self.string(&host)? {
            if h.trim().is_empty() {
                return Err(self.error(&host.path, "must be an address to listen on, got \"\""));
            }
            s.host = h.trim().to_string();
        }
        if let Some(port) = self.uint(&n.get("port"), 0, 65535)? {
            s.port = port as u16;
        }
        if let Some(v) = self.boolean(&n.get("allow_unauthenticated"))? {
            s.allow_unauthenticated = v;
        }
        Ok(())
    }

    // ---- accessors ----

    fn error(&self, path: &[String], message: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            path: self.file.to_path_buf(),
            location: self.locate(path),
            key: dotted(path),
            message: message.into(),
        }
    }

    fn locate(&self, path: &[String]) -> Option<Location> {
        let keys: Vec<String> = path.iter().take_while(|s| !s.starts_with('[')).cloned().collect();
        self.outline.locate(&keys).map(|(line, column)| Location {
            line: line + 1 + self.line_offset,
            column,
        })
    }

    /// A section must be a map (or absent / null for all defaults).
    fn section(&self, n: &Node<'_>) -> Result<(), ConfigError> {
        match n.value {
            None | Some(Value::Null) | Some(Value::Mapping(_)) => Ok(()),
            Some(other) => Err(self.error(&n.path, format!("expected a map of settings, got {}", describe(other)))),
        }
    }

    /// The entries of a map-valued key, keys as text.
    fn entries<'v>(&self, n: &Node<'v>) -> Result<Vec<(String, Node<'v>)>, ConfigError> {
        match n.value {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Mapping(map)) => map
                .iter()
                .map(|(k, v)| {
                    let key = scalar_text(k)
                        .ok_or_else(|| self.error(&n.path, format!("keys must be text, got {}", describe(k))))?;
                    Ok((key.clone(), n.child(key, Some(v))))
                })
                .collect(),
            Some(other) => Err(self.error(&n.path, format!("expected a map, got {}", describe(other)))),
        }
    }

    fn expand(&self, s: &str) -> Text {
        match s.strip_prefix('$') {
            Some(name) if is_env_name(name) => Text {
                value: (self.env)(name).unwrap_or_default(),
                var: Some(name.to_string()),
            },
            _ => Text {
                value: s.to_string(),
                var: None,
            },
        }
    }

    fn text(&self, n: &Node<'_>) -> Result<Option<Text>, ConfigError> {
        match n.value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(self.expand(s))),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(Text {
                value: scalar_text(v).unwrap_or_default(),
                var: None,
            })),
            Some(other) => Err(self.error(&n.path, format!("expected a string, got {}", describe(other)))),
        }
    }

    fn string(&self, n: &Node<'_>) -> Result<Option<String>, ConfigError> {
        Ok(self.text(n)?.map(|t| t.value))
    }

    /// An integer in `min..=max`.
    fn uint(&self, n: &Node<'_>, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
        let expected = if min > 0 {
            "expected a positive integer"
        } else {
            "expected a non-negative integer"
        };
        let (parsed, shown): (Option<i128>, String) = match n.value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(x)) => (
                x.as_u64().map(i128::from).or_else(|| x.as_i64().map(i128::from)),
                x.to_string(),
            ),
            Some(Value::String(s)) => {
                let t = self.expand(s);
                (t.value.trim().parse::<i128>().ok(), t.describe())
            }
            Some(other) => (None, describe(other)),
        };
        let Some(v) = parsed else {
            return Err(self.error(&n.path, format!("{expected}, got {shown}")));
        };
        if v < 0 {
            return Err(self.error(&n.path, format!("{expected}, got {shown}")));
        }
        if v < i128::from(min) {
            return Err(self.error(&n.path, format!("must be at least {min}, got {shown}")));
        }
        if v > i128::from(max) {
            return Err(self.error(&n.path, format!("must be at most {max}, got {shown}")));
        }
        Ok(Some(v as u64))
    }

    fn int(&self, n: &Node<'_>) -> Result<Option<i64>, ConfigError> {
        let (parsed, shown) = match n.value {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(x)) => (x.as_i64(), x.to_string()),
            Some(Value::String(s)) => {
                let t = self.expand(s);
                (t.value.trim().parse::<i64>().ok(), t.describe())
            }
            Some(other) => (None, describe(other)),
        };
        parsed
            .map(Some)
            .ok_or_else(|| self.error(&n.path, format!("expected an integer, got {shown}")))
    }

    fn boolean(&self, n: &Node<'_>) -> Result<Option<bool>, ConfigError> {
        match n.value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => {
                let t = self.expand(s);
                match t.value.trim().to_ascii_lowercase().as_str() {
                    "true" => Ok(Some(true)),
                    "false" => Ok(Some(false)),
                    _ => Err(self.error(&n.path, format!("expected true or false, got {}", t.describe()))),
                }
            }
            Some(other) => Err(self.error(&n.path, format!("expected true or false, got {}", describe(other)))),
        }
    }

    /// A list of strings (a single string is a list of one); empty entries are dropped.
    fn string_list(&self, n: &Node<'_>) -> Result<Option<Vec<String>>, ConfigError> {
        match n.value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Sequence(items)) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let node = n.child(format!("[{i}]"), Some(item));
                    if let Some(s) = self.string(&node)? {
                        let s = s.trim();
                        if !s.is_empty() {
                            out.push(s.to_string());
                        }
                    }
                }
                Ok(Some(out))
            }
            Some(Value::Mapping(_)) | Some(Value::Tagged(_)) => Err(self.error(
                &n.path,
                format!(
                    "expected a list of strings, got {}",
                    describe(n.value.unwrap_or(&Value::Null))
                ),
            )),
            Some(_) => Ok(self
                .string(n)?
                .map(|s| vec![s.trim().to_string()])
                .filter(|v| !v[0].is_empty())),
        }
    }

    /// One of `options` (matched case-insensitively).
    fn choice<T: Copy>(&self, n: &Node<'_>, options: &[(&str, T)]) -> Result<Option<T>, ConfigError> {
        let Some(text) = self.text(n)? else {
            return Ok(None);
        };
        let wanted = text.value.trim().to_ascii_lowercase();
        if let Some((_, v)) = options.iter().find(|(name, _)| *name == wanted) {
            return Ok(Some(*v));
        }
        let mut names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        names.dedup();
        let names: Vec<&str> = names
            .into_iter()
            .filter(|name| !matches!(*name, "true" | "false" | "off"))
            .collect();
        Err(self.error(
            &n.path,
            format!("expected one of {}; got {}", names.join(", "), text.describe()),
        ))
    }

    /// `claude | codex | demo`, empty = infer from the command.
    fn backend(&self, n: &Node<'_>) -> Result<Option<Backend>, ConfigError> {
        if self.text(n)?.is_some_and(|t| t.value.trim().is_empty()) {
            return Ok(None);
        }
        self.choice(
            n,
            &[
                ("claude", Backend::Claude),
                ("codex", Backend::Codex),
                ("demo", Backend::Demo),
            ],
        )
    }

    fn permission_mode(&self, n: &Node<'_>) -> Result<Option<PermissionMode>, ConfigError> {
        if self.text(n)?.is_some_and(|t| t.value.trim().is_empty()) {
            return Ok(None);
        }
        self.choice(
            n,
            &[("bypass", PermissionMode::Bypass), ("sandbox", PermissionMode::Sandbox)],
        )
    }

    /// A path on this machine: `~` expanded with `HOME`, relative paths against the file's folder.
    fn local_path(&self, raw: &str) -> PathBuf {
        let expanded = if raw == "~" || raw.starts_with("~/") {
            match (self.env)("HOME").filter(|h| !h.is_empty()) {
                Some(home) => PathBuf::from(home).join(raw.trim_start_matches('~').trim_start_matches('/')),
                None => PathBuf::from(raw),
            }
        } else {
            PathBuf::from(raw)
        };
        if expanded.is_relative() && !raw.starts_with('~') {
            normalize(&self.dir.join(expanded))
        } else {
            normalize(&expanded)
        }
    }
}

fn is_owner_repo(slug: &str) -> bool {
    let mut parts = slug.split('/');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// `[user@]host[:port]`: no spaces, a host, a port in 1..=65535 when given.
fn check_host(host: &str) -> Result<(), String> {
    if host.chars().any(char::is_whitespace) {
        return Err(format!(
            "expected `[user@]host[:port]`, got {host:?} (contains whitespace)"
        ));
    }
    let after_user = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let port = if let Some(rest) = after_user.strip_prefix('[') {
        rest.split_once(']').and_then(|(_, p)| p.strip_prefix(':'))
    } else if after_user.matches(':').count() == 1 {
        after_user.split_once(':').map(|(_, p)| p)
    } else {
        None
    };
    let name = after_user.split(':').next().unwrap_or("");
    if name.is_empty() && !after_user.starts_with('[') {
        return Err(format!("expected `[user@]host[:port]`, got {host:?} (no host name)"));
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(format!(
            "expected `[user@]host[:port]`, got {host:?} (port must be 1-65535)"
        ));
    }
    Ok(())
}

/// A clone URL (`scheme://…`) or an scp-style address (`git@host:org/repo`).
fn looks_like_url(repo: &str) -> bool {
    if repo.contains("://") {
        return true;
    }
    match (repo.find(':'), repo.find('/')) {
        (Some(colon), Some(slash)) => colon < slash && !repo.starts_with('.'),
        (Some(_), None) => !repo.starts_with('.'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_strings() {
        for ok in ["build1", "me@build1", "build1:2222", "me@10.0.0.1:22", "[::1]:22"] {
            assert_eq!(check_host(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a b", "build1:0", "build1:99999", "me@", "host:x"] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_and_paths() {
        assert!(looks_like_url("https://github.com/o/r.git"));
        assert!(looks_like_url("git@github.com:o/r.git"));
        assert!(!looks_like_url("../repo"));
        assert!(!looks_like_url("repo"));
        assert!(!looks_like_url("/srv/repo"));
    }

    #[test]
    fn owner_repo() {
        assert!(is_owner_repo("octo/hello-world"));
        assert!(!is_owner_repo("octo"));
        assert!(!is_owner_repo("octo/hello/world"));
        assert!(!is_owner_repo("/x"));
    }
}
