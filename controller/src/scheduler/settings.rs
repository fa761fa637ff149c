//! Runtime settings changes from the API: validated against the current configuration, applied to it,
//! and written back into WORKFLOW.md as key-level edits.

use itervox_protocol::api::{ProfileDef, TrackerStatesRequest};
use itervox_protocol::worker::{Backend, PermissionMode};
use serde_json::json;

use super::actor::Actor;
use super::command::Refusal;
use crate::config::edit::{Edit, EditError};
use crate::config::{AgentMode, DispatchStrategy, Workflow};

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

fn set(path: Vec<String>, value: yaml_serde::Value) -> Edit {
    Edit::Set { path, value }
}

fn remove(path: Vec<String>) -> Edit {
    Edit::Remove { path }
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

/// Writes the edits into WORKFLOW.md and returns the file as it now loads (a person's concurrent edit of
/// other keys included). A person's broken edit on disk is a 409; an edit that would not load, a 400.
fn persist(actor: &Actor, edits: &[Edit]) -> Result<Workflow, Refusal> {
    let path = actor.workflow().path.clone();
    let watch = actor.watch_handle();
    let write = || match &watch {
        Some(w) => w.apply_edits(edits),
        None => crate::config::edit::apply_edits(&path, edits),
    };
    // The write takes a file lock and fsyncs: keep it off the async worker when the runtime allows it.
    let result = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(write),
        _ => write(),
    };
    match result {
        Ok(outcome) => Ok(outcome.workflow),
        Err(EditError::Conflict { error }) => Err(Refusal::Conflict(format!(
            "WORKFLOW.md has an edit that does not load; fix it first ({error})"
        ))),
        Err(EditError::Invalid { error }) => Err(Refusal::BadRequest {
            field: None,
            message: format!("the change would make WORKFLOW.md invalid: {error}"),
        }),
        Err(e @ EditError::Unsupported { .. }) => Err(Refusal::Conflict(format!("WORKFLOW.md was not updated: {e}"))),
        Err(e) => Err(Refusal::Internal(format!("writing WORKFLOW.md: {e}"))),
    }
}

/// Validates a change, writes it into WORKFLOW.md, then adopts the file as it now loads. Nothing changes
/// when validation or the write fails.
pub(super) fn apply(actor: &mut Actor, change: SettingsChange) -> Result<serde_json::Value, Refusal> {
    let config = actor.workflow().config.clone();
    let (edits, answer, before): (Vec<Edit>, serde_json::Value, Option<Before>) = match change {
        SettingsChange::Workers { workers, delta } => {
            if workers.is_none() && delta.is_none() {
                return Err(bad(
                    "workers",
                    "give either \"workers\" (absolute) or \"delta\" (relative)",
                ));
            }
            let n = clamp_workers(config.agent.max_concurrent_agents, workers, delta);
            (
                vec![set(key(&["agent", "max_concurrent_agents"]), yaml(n))],
                json!({ "workers": n }),
                None,
            )
        }
        SettingsChange::AgentMode(mode) => (
            vec![set(key(&["agent", "agent_mode"]), yaml(mode.as_str()))],
            json!({ "ok": true, "mode": mode.as_str() }),
            None,
        ),
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
            if let Some(t) = &terminal
                && let Some(both) = t.iter().find(|s| active.iter().any(|a| a.eq_ignore_ascii_case(s)))
            {
                return Err(bad(
                    "terminalStates",
                    format!("{both:?} cannot be both active and terminal"),
                ));
            }
            let mut edits = vec![set(key(&["tracker", "active_states"]), yaml(&active))];
            if let Some(t) = &terminal {
                edits.push(set(key(&["tracker", "terminal_states"]), yaml(t)));
            }
            if let Some(b) = req.backlog_states.as_deref().map(clean) {
                edits.push(set(key(&["tracker", "backlog_states"]), yaml(&b)));
            }
            for (name, value) in [
                ("completion_state", &req.completion_state),
                ("working_state", &req.working_state),
                ("failed_state", &req.failed_state),
            ] {
                if let Some(v) = value {
                    edits.push(set(key(&["tracker", name]), yaml(v.trim())));
                }
            }
            (edits, json!({ "ok": true }), None)
        }
        SettingsChange::AddHost { host, description } => {
            let name = crate::hosts::parse_host(&host).map_err(|e| bad("host", e))?;
            if actor.has_host(&name) || config.agent.ssh_hosts.iter().any(|h| h == &name) {
                return Err(Refusal::Conflict(format!("host {name} is already in the pool")));
            }
            let mut hosts = config.agent.ssh_hosts.clone();
            hosts.push(name.clone());
            let mut edits = vec![set(key(&["agent", "ssh_hosts"]), yaml(&hosts))];
            if !description.is_empty() {
                edits.push(set(key(&["agent", "ssh_host_descriptions", &name]), yaml(&description)));
            }
            (edits, json!({ "ok": true, "host": name }), None)
        }
        SettingsChange::RemoveHost { host, drain } => {
            let name = crate::hosts::parse_host(&host).unwrap_or(host.clone());
            if !config.agent.ssh_hosts.iter().any(|h| h == &name) {
                // A draining host is already out of WORKFLOW.md but still in the pool: removing it again
                // without `drain` cancels the sessions it was left to finish; with `drain` nothing changes.
                if actor.is_leaving(&name) {
                    if !drain {
                        actor.remove_host_now(&name, false);
                    }
                    return Ok(json!({ "ok": true, "host": name, "drain": drain }));
                }
                return Err(Refusal::NotFound(format!("host {name} in the pool")));
            }
            let hosts: Vec<String> = config.agent.ssh_hosts.iter().filter(|h| *h != &name).cloned().collect();
            let mut edits = vec![set(key(&["agent", "ssh_hosts"]), yaml(&hosts))];
            if config.agent.ssh_host_descriptions.contains_key(&name) {
                edits.push(remove(key(&["agent", "ssh_host_descriptions", &name])));
            }
            (
                edits,
                json!({ "ok": true, "host": name, "drain": drain }),
                Some(Before::RemoveHost { name, drain }),
            )
        }
        SettingsChange::DispatchStrategy(st) => (
            vec![set(key(&["agent", "dispatch_strategy"]), yaml(st.as_str()))],
            json!({ "ok": true, "strategy": st.as_str() }),
            None,
        ),
        SettingsChange::AutoClear(on) => (
            vec![set(key(&["workspace", "auto_clear"]), yaml(on))],
            json!({ "ok": true, "autoClearWorkspace": on }),
            None,
        ),
        SettingsChange::InlineInput(on) => (
            vec![set(key(&["agent", "inline_input"]), yaml(on))],
            json!({ "ok": true, "inlineInput": on }),
            None,
        ),
        SettingsChange::PutProfile { name, def } => {
            if name.trim().is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(bad(
                    "name",
                    format!("profile name {name:?} must be a plain word (letters, digits, - and _)"),
                ));
            }
            if def.command.trim().is_empty() {
                return Err(bad("command", "command must not be empty"));
            }
            if def.command.contains(['\n', ';', '|', '&', '`', '$', '>', '<']) {
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
            if let Some(p) = permission {
                map.insert(
                    "permission_mode".into(),
                    yaml(match p {
                        PermissionMode::Bypass => "bypass",
                        PermissionMode::Sandbox => "sandbox",
                    }),
                );
            }
            (
                vec![set(key(&["agent", "profiles", &name]), yaml_serde::Value::Mapping(map))],
                json!({ "ok": true }),
                None,
            )
        }
        SettingsChange::DeleteProfile(name) => {
            if !config.agent.profiles.contains_key(&name) {
                return Err(Refusal::NotFound(format!("profile {name}")));
            }
            let mut edits = vec![remove(key(&["agent", "profiles", &name]))];
            if config.agent.reviewer_profile.as_deref() == Some(name.as_str()) {
                edits.push(set(key(&["agent", "reviewer_profile"]), yaml("")));
                edits.push(set(key(&["agent", "auto_review"]), yaml(false)));
            }
            (edits, json!({ "ok": true }), None)
        }
        SettingsChange::Reviewer { profile, auto_review } => {
            let profile = profile.trim().to_string();
            if !profile.is_empty() && !config.agent.profiles.contains_key(&profile) {
                return Err(bad("profile", format!("unknown profile {profile:?}")));
            }
            if profile.is_empty() && auto_review {
                return Err(bad("autoReview", "autoReview needs a reviewer profile"));
            }
            (
                vec![
                    set(key(&["agent", "reviewer_profile"]), yaml(&profile)),
                    set(key(&["agent", "auto_review"]), yaml(auto_review)),
                ],
                json!({ "ok": true }),
                None,
            )
        }
        SettingsChange::ProjectFilter(filter) => {
            let edit = match &filter {
                Some(slugs) => set(key(&["tracker", "project_filter"]), yaml(slugs)),
                None => remove(key(&["tracker", "project_filter"])),
            };
            (
                vec![edit],
                json!({ "ok": true, "filter": filter }),
                Some(Before::ProjectFilter(filter)),
            )
        }
    };
    // Effects that must happen before the new configuration is adopted.
    if let Some(Before::ProjectFilter(filter)) = &before {
        actor
            .tracker()
            .set_project_filter(filter.clone())
            .map_err(|e| Refusal::NotSupported(e.to_string()))?;
    }
    let workflow = persist(actor, &edits)?;
    if let Some(Before::RemoveHost { name, drain }) = before {
        actor.remove_host_now(&name, drain);
    }
    actor.adopt(workflow);
    Ok(answer)
}

/// Side effects of a change that come before adopting the new configuration.
enum Before {
    RemoveHost { name: String, drain: bool },
    ProjectFilter(Option<Vec<String>>),
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
