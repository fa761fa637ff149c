//! What a run executes: the agent command, backend and permission mode chosen from the configuration,
//! the issue's profile and backend overrides, and the rendered prompt.

use itervox_protocol::worker::{Backend, PermissionMode};

use crate::config::template::{HumanReply, PromptExtras, PromptTemplate, assemble_prompt};
use crate::config::{Config, Profile, Workflow, infer_backend};
use crate::tracker::Issue;

/// The resolved agent for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentChoice {
    pub command: String,
    pub backend: Backend,
    pub profile: Option<String>,
    pub permission_mode: PermissionMode,
    /// The profile's prompt, replacing the workflow body.
    pub prompt_override: Option<String>,
}

/// Picks the agent for a run: the named profile when it exists and is enabled (else the default
/// command), then a backend override when given.
pub fn choose_agent(config: &Config, profile: Option<&str>, backend_override: Option<Backend>) -> AgentChoice {
    let agent = &config.agent;
    let profile_def: Option<(&String, &Profile)> = profile
        .and_then(|name| agent.profiles.get_key_value(name))
        .filter(|(_, p)| p.enabled);
    let (command, backend, profile_name, permission, prompt) = match profile_def {
        Some((name, p)) => (
            p.command.clone(),
            p.backend.or(agent.backend),
            Some(name.clone()),
            p.permission_mode.unwrap_or(agent.permission_mode),
            p.prompt.clone(),
        ),
        None => (agent.command.clone(), agent.backend, None, agent.permission_mode, None),
    };
    let mut backend = backend.unwrap_or_else(|| infer_backend(&command));
    let mut command = command;
    if let Some(b) = backend_override
        && b != backend
    {
        backend = b;
        // A backend override with a command for the other CLI switches to that CLI's plain command.
        command = match b {
            Backend::Claude => "claude".into(),
            Backend::Codex => "codex".into(),
            Backend::Demo => String::new(),
        };
    }
    AgentChoice {
        command,
        backend,
        profile: profile_name,
        permission_mode: permission,
        prompt_override: prompt,
    }
}

/// Renders the prompt of a run's first turn: the profile's prompt or the workflow body (strict Liquid),
/// then the agent-mode appendix and the human-input appendix. A render failure is returned as a message
/// (the issue goes to retry with it; it never runs with a half-rendered prompt).
pub fn render_prompt(workflow: &Workflow, choice: &AgentChoice, issue: &Issue, attempt: u32) -> Result<String, String> {
    render_with(workflow, choice, issue, attempt, PromptExtras::default())
}

fn render_with(
    workflow: &Workflow,
    choice: &AgentChoice,
    issue: &Issue,
    attempt: u32,
    extras: PromptExtras,
) -> Result<String, String> {
    let template = match &choice.prompt_override {
        Some(p) => PromptTemplate::parse(p),
        None => PromptTemplate::for_body(&workflow.prompt_template),
    }
    .map_err(|e| e.to_string())?;
    let attempt = (attempt > 1).then_some(attempt);
    let body = template.render(issue, attempt).map_err(|e| e.to_string())?;
    Ok(assemble_prompt(&body, workflow.config.agent.agent_mode, &extras))
}

/// A fresh session's prompt for an issue whose question was answered but whose original session is gone
/// (its host was removed): the question and the answer are part of the prompt.
pub fn render_with_reply(
    workflow: &Workflow,
    choice: &AgentChoice,
    issue: &Issue,
    attempt: u32,
    question: &str,
    reply: &str,
) -> Result<String, String> {
    let extras = PromptExtras {
        human_reply: Some(HumanReply {
            question: Some(question.to_string()),
            reply: reply.to_string(),
        }),
        sections: Vec::new(),
    };
    render_with(workflow, choice, issue, attempt, extras)
}

/// The prompt of a continuation turn.
pub fn continuation_prompt(issue: &Issue) -> String {
    format!(
        "Continue working on {}: {}. If the work is complete, reply with a one-line summary and make no further \
         changes.",
        issue.identifier, issue.title
    )
}

/// The prompt that resumes a session after a human answered the agent's question: the answer itself, as
/// if the human had typed it into the agent's session.
pub fn reply_prompt(reply: &str) -> String {
    reply.to_string()
}
