//! Runtime settings changes from the API: validated against the current configuration, applied to it,
//! and written back into WORKFLOW.md as key-level edits.

use itervox_protocol::api::{ProfileDef, TrackerStatesRequest};
use itervox_protocol::worker::{Backend, PermissionMode};
use serde_json::json;

use super::actor::Actor;
use super::command::Refusal;
use crate::config::{AgentMode, DispatchStrategy, Profile};

/// Largest `agent.max_concurrent_agents` the API accepts.
pub const MAX_WORKERS: i64 = 200;

/// One settings change, already syntactically valid (the API parsed the body).
#[derive(Debug, Clone, PartialEq)]
pub enum SettingsChange {
    /// Absolute or relative change of `agent.max_concurrent_agents`, clamped to 1..=MAX_WORKERS.
    Workers {
        workers: Option<i64>,
        delta: Option<i64>,
    },
    AgentMode(AgentMode),
    TrackerStates(TrackerStatesRequest),
    AddHost {
        host: String,
        description: String,
    },
    RemoveHost {
        host: String,
        drain: bool,
    },
    DispatchStrategy(DispatchStrategy),
    AutoClear(bool),
    InlineInput(bool),
    PutProfile {
        name: String,
        def: ProfileDef,
    },
    DeleteProfile(String),
    Reviewer {
        profile: String,
        auto_review: bool,
    },
    /// Linear project filter: `None` = default, `Some([])` = all.
    ProjectFilter(Option<Vec<String>>),
}

/// Clamps a workers request against the current value.
pub fn clamp_workers(current: u32, workers: Option<i64>, delta: Option<i64>) -> u32 {
    let target = match (workers, delta) {
        (Some(w), _) => w,
        (None, Some(d)) => i64::from(current) + d,
        (None, None) => i64::from(current),
    };
    target.clamp(1, MAX_WORKERS) as u32
}

/// One key-level change of WORKFLOW.md's front matter.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyEdit {
    Set(Vec<String>, yaml_serde::Value),
    Remove(Vec<String>),
}

fn key(path: &[&str]) -> Vec<String> {
    path.iter().map(|s| s.to_string()).collect()
}

fn yaml<T: serde::Serialize>(v: T) -> yaml_serde::Value {
    yaml_serde::to_value(v).unwrap_or(yaml_serde::Value::Null)
}

fn bad(field: &'static str, message: impl Into<String>) -> Refusal {
    Refusal::BadRequest {
        field: Some(field),
        message: message.into(),
    }
}

fn parse_backend(s: &str) -> Result<Backend, Refusal> {
    match s {
        "claude" => Ok(Backend::Claude),
        "codex" => Ok(Backend::Codex),
        "demo" => Ok(Backend::Demo),
        other => Err(bad(
            "backend",
            format!("unknown backend {other:?}; expected claude, codex or demo"),
        )),
    }
}

fn parse_permission(s: &str) -> Result<PermissionMode, Refusal> {
    match s {
        "bypass" => Ok(PermissionMode::Bypass),
        "sandbox" => Ok(PermissionMode::Sandbox),
        other => Err(bad(
            "permissionMode",
            format!("unknown permission mode {other:?}; expected bypass or sandbox"),
        )),
    }
}

/// Writes the edits into WORKFLOW.md; a refusal (a person's broken edit on disk) becomes a 409.
fn persist(actor: &Actor, edits: &[KeyEdit]) -> Result<(), Refusal> {
    let path = actor.workflow().path.clone();
    let result = tokio::task::block_in_place(|| crate::config::edit::persist(&path, edits));
    result.map_err(|e| Refusal::Conflict(format!("WORKFLOW.md was not updated: {e}")))
}

/// Validates a change, writes it into WORKFLOW.md, then applies it to the running configuration.
/// Nothing changes when validation or the write fails.
pub(super) fn apply(actor: &mut Actor, change: SettingsChange) -> Result<serde_json::Value, Refusal> {
    let config = actor.workflow().config.clone();
    match change {
        SettingsChange::Workers { workers, delta } => {
            if workers.is_none() && delta.is_none() {
                return Err(bad(
                    "workers",
                    "give either \"workers\" (absolute) or \"delta\" (relative)",
                ));
            }
            let n = clamp_workers(config.agent.max_concurrent_agents, workers, delta);
            persist(
                actor,
                &[KeyEdit::Set(key(&["agent", "max_concurrent_agents"]), yaml(n))],
            )?;
            actor.workflow_mut().config.agent.max_concurrent_agents = n;
            actor.redispatch();
            Ok(json!({ "workers": n }))
        }
        SettingsChange::AgentMode(mode) => {
            persist(
                actor,
                &[KeyEdit::Set(key(&["agent", "agent_mode"]), yaml(mode.as_str()))],
            )?;
            actor.workflow_mut().config.agent.agent_mode = mode;
            Ok(json!({ "ok": true, "mode": mode.as_str() }))
        }
        SettingsChange::TrackerStates(req) => {
            let clean = |v: &[String]| -> Vec<String> {
                v.iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            };
            let active = clean(&req.active_states);
            if active.is_empty() {
                return Err(bad("activeStates", "activeStates must name at least one state"));
            }
            let terminal = req.terminal_states.as_deref().map(clean);
            let backlog = req.backlog_states.as_deref().map(clean);
            if let Some(t) = &terminal
                && let Some(both) = t.iter().find(|s| active.iter().any(|a| a.eq_ignore_ascii_case(s)))
            {
                return Err(bad(
                    "terminalStates",
                    format!("{both:?} cannot be both active and terminal"),
                ));
            }
            let mut edits = vec![KeyEdit::Set(key(&["tracker", "active_states"]), yaml(&active))];
            if let Some(t) = &terminal {
                edits.push(KeyEdit::Set(key(&["tracker", "terminal_states"]), yaml(t)));
            }
            if let Some(b) = &backlog {
                edits.push(KeyEdit::Set(key(&["tracker", "backlog_states"]), yaml(b)));
            }
            let opt = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_string());
            let completion = opt(&req.completion_state);
            let working = opt(&req.working_state);
            let failed = opt(&req.failed_state);
            for (name, value) in [
                ("completion_state", &completion),
                ("working_state", &working),
                ("failed_state", &failed),
            ] {
                if let Some(v) = value {
                    edits.push(KeyEdit::Set(key(&["tracker", name]), yaml(v)));
                }
            }
            persist(actor, &edits)?;
            let t = &mut actor.workflow_mut().config.tracker;
            t.active_states = active;
            if let Some(v) = terminal {
                t.terminal_states = v;
            }
            if let Some(v) = backlog {
                t.backlog_states = v;
            }
            let some = |v: String| (!v.is_empty()).then_some(v);
            if let Some(v) = completion {
                t.completion_state = some(v);
            }
            if let Some(v) = working {
                t.working_state = some(v);
            }
            if let Some(v) = failed {
                t.failed_state = some(v);
            }
            actor.redispatch();
            Ok(json!({ "ok": true }))
        }
        SettingsChange::AddHost { host, description } => {
            let spec = crate::hosts::parse_host(&host).map_err(|e| bad("host", e))?;
            let name = spec;
            if actor.has_host(&name) || config.agent.ssh_hosts.iter().any(|h| h == &name) {
                return Err(Refusal::Conflict(format!("host {name} is already in the pool")));
            }
            let mut hosts = config.agent.ssh_hosts.clone();
            hosts.push(name.clone());
            let mut edits = vec![KeyEdit::Set(key(&["agent", "ssh_hosts"]), yaml(&hosts))];
            if !description.is_empty() {
                edits.push(KeyEdit::Set(
                    key(&["agent", "ssh_host_descriptions", &name]),
                    yaml(&description),
                ));
            }
            persist(actor, &edits)?;
            let agent = &mut actor.workflow_mut().config.agent;
            agent.ssh_hosts = hosts;
            if !description.is_empty() {
                agent.ssh_host_descriptions.insert(name.clone(), description.clone());
            }
            actor.add_host_now(&name, &description);
            Ok(json!({ "ok": true, "host": name }))
        }
        SettingsChange::RemoveHost { host, drain } => {
            let name = crate::hosts::parse_host(&host).unwrap_or(host.clone());
            let listed = config.agent.ssh_hosts.iter().any(|h| h == &name);
            if !listed {
                return Err(Refusal::NotFound(format!("host {name} in the pool")));
            }
            let hosts: Vec<String> = config.agent.ssh_hosts.iter().filter(|h| *h != &name).cloned().collect();
            let mut edits = vec![KeyEdit::Set(key(&["agent", "ssh_hosts"]), yaml(&hosts))];
            if config.agent.ssh_host_descriptions.contains_key(&name) {
                edits.push(KeyEdit::Remove(key(&["agent", "ssh_host_descriptions", &name])));
            }
            persist(actor, &edits)?;
            let agent = &mut actor.workflow_mut().config.agent;
            agent.ssh_hosts = hosts;
            agent.ssh_host_descriptions.remove(&name);
            actor.remove_host_now(&name, drain);
            Ok(json!({ "ok": true, "host": name, "drain": drain }))
        }
        SettingsChange::DispatchStrategy(s) => {
            persist(
                actor,
                &[KeyEdit::Set(key(&["agent", "dispatch_strategy"]), yaml(s.as_str()))],
            )?;
            actor.workflow_mut().config.agent.dispatch_strategy = s;
            Ok(json!({ "ok": true, "strategy": s.as_str() }))
        }
        SettingsChange::AutoClear(on) => {
            persist(actor, &[KeyEdit::Set(key(&["workspace", "auto_clear"]), yaml(on))])?;
            actor.workflow_mut().config.workspace.auto_clear = on;
            Ok(json!({ "ok": true, "autoClearWorkspace": on }))
        }
        SettingsChange::InlineInput(on) => {
            persist(actor, &[KeyEdit::Set(key(&["agent", "inline_input"]), yaml(on))])?;
            actor.workflow_mut().config.agent.inline_input = on;
            Ok(json!({ "ok": true, "inlineInput": on }))
        }
        SettingsChange::PutProfile { name, def } => {
            if name.trim().is_empty() || name.contains(['/', '.', ' ']) {
                return Err(bad(
                    "name",
                    format!("profile name {name:?} must be a plain word (letters, digits, - and _)"),
                ));
            }
            if def.command.trim().is_empty() {
                return Err(bad("command", "command must not be empty"));
            }
            if def.command.contains(['\n', ';', '|', '&', '`', '$']) {
                return Err(bad(
                    "command",
                    "command must be a plain command line without shell metacharacters",
                ));
            }
            let backend = def
                .backend
                .as_deref()
                .filter(|b| !b.is_empty())
                .map(parse_backend)
                .transpose()?;
            let permission = def
                .permission_mode
                .as_deref()
                .filter(|p| !p.is_empty())
                .map(parse_permission)
                .transpose()?;
            let mut map = yaml_serde::Mapping::new();
            map.insert("command".into(), yaml(&def.command));
            if let Some(p) = def.prompt.as_ref().filter(|p| !p.is_empty()) {
                map.insert("prompt".into(), yaml(p));
            }
            if let Some(b) = backend {
                map.insert("backend".into(), yaml(b.as_str()));
            }
            if let Some(e) = def.enabled {
                map.insert("enabled".into(), yaml(e));
            }
            if let Some(p) = &def.permission_mode
                && !p.is_empty()
            {
                map.insert("permission_mode".into(), yaml(p));
            }
            persist(
                actor,
                &[KeyEdit::Set(
                    key(&["agent", "profiles", &name]),
                    yaml_serde::Value::Mapping(map),
                )],
            )?;
            actor.workflow_mut().config.agent.profiles.insert(
                name,
                Profile {
                    command: def.command,
                    prompt: def.prompt.filter(|p| !p.is_empty()),
                    backend,
                    enabled: def.enabled.unwrap_or(true),
                    permission_mode: permission,
                },
            );
            Ok(json!({ "ok": true }))
        }
        SettingsChange::DeleteProfile(name) => {
            if !config.agent.profiles.contains_key(&name) {
                return Err(Refusal::NotFound(format!("profile {name}")));
            }
            let mut edits = vec![KeyEdit::Remove(key(&["agent", "profiles", &name]))];
            let clears_reviewer = config.agent.reviewer_profile.as_deref() == Some(name.as_str());
            if clears_reviewer {
                edits.push(KeyEdit::Set(key(&["agent", "reviewer_profile"]), yaml("")));
            }
            persist(actor, &edits)?;
            let agent = &mut actor.workflow_mut().config.agent;
            agent.profiles.remove(&name);
            if clears_reviewer {
                agent.reviewer_profile = None;
            }
            Ok(json!({ "ok": true }))
        }
        SettingsChange::Reviewer { profile, auto_review } => {
            let profile = profile.trim().to_string();
            if !profile.is_empty() && !config.agent.profiles.contains_key(&profile) {
                return Err(bad("profile", format!("unknown profile {profile:?}")));
            }
            if profile.is_empty() && auto_review {
                return Err(bad("autoReview", "autoReview needs a reviewer profile"));
            }
            persist(
                actor,
                &[
                    KeyEdit::Set(key(&["agent", "reviewer_profile"]), yaml(&profile)),
                    KeyEdit::Set(key(&["agent", "auto_review"]), yaml(auto_review)),
                ],
            )?;
            let agent = &mut actor.workflow_mut().config.agent;
            agent.reviewer_profile = (!profile.is_empty()).then_some(profile);
            agent.auto_review = auto_review;
            Ok(json!({ "ok": true }))
        }
        SettingsChange::ProjectFilter(filter) => {
            actor
                .tracker()
                .set_project_filter(filter.clone())
                .map_err(|e| Refusal::NotSupported(e.to_string()))?;
            let edit = match &filter {
                Some(slugs) => KeyEdit::Set(key(&["tracker", "project_filter"]), yaml(slugs)),
                None => KeyEdit::Remove(key(&["tracker", "project_filter"])),
            };
            persist(actor, &[edit])?;
            actor.workflow_mut().config.tracker.project_filter = filter.clone();
            Ok(json!({ "ok": true, "filter": filter }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_clamped() {
        assert_eq!(clamp_workers(3, Some(5), None), 5);
        assert_eq!(clamp_workers(3, None, Some(2)), 5);
        assert_eq!(clamp_workers(3, None, Some(-10)), 1);
        assert_eq!(clamp_workers(3, Some(0), None), 1);
        assert_eq!(clamp_workers(3, Some(100_000), None), MAX_WORKERS as u32);
        assert_eq!(clamp_workers(3, Some(7), Some(100)), 7, "absolute wins over delta");
    }
}
