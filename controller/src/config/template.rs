//! Prompt template rendering (interim: plain substitution of a few variables until the strict Liquid
//! renderer lands).

use crate::tracker::Issue;

/// Why a prompt could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("prompt template: {0}")]
    Render(String),
}

/// A parsed prompt template.
#[derive(Debug, Clone)]
pub struct PromptTemplate {
    src: String,
}

impl PromptTemplate {
    pub fn parse(src: &str) -> Result<Self, TemplateError> {
        Ok(PromptTemplate { src: src.to_string() })
    }

    pub fn render(&self, issue: &Issue, attempt: Option<u32>) -> Result<String, TemplateError> {
        let _ = attempt;
        Ok(self
            .src
            .replace("{{ issue.identifier }}", &issue.identifier)
            .replace("{{ issue.title }}", &issue.title)
            .replace("{{ issue.description }}", issue.description.as_deref().unwrap_or("")))
    }
}

/// The prompt used when the workflow's body is empty.
pub fn default_prompt() -> &'static str {
    "You are working on issue {{ issue.identifier }}: {{ issue.title }}\n\n{{ issue.description }}\n"
}
