//! Reads WORKFLOW.md into a typed `Workflow` (placeholder until the loader lands).

use std::path::{Path, PathBuf};

use super::Workflow;

/// Why WORKFLOW.md could not be loaded; names the file, and the line, column and key where known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Reads and parses the workflow file at `path`.
pub fn load_workflow(path: &Path) -> Result<Workflow, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse_workflow(path, &text, &|k| std::env::var(k).ok())
}

/// Parses workflow text; `env` resolves `$VAR` scalars.
pub fn parse_workflow(path: &Path, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Workflow, ConfigError> {
    let _ = (text, env);
    Err(ConfigError::Invalid {
        path: path.to_path_buf(),
        message: "loader not built yet".into(),
    })
}
