//! Comment-preserving, atomic edits of WORKFLOW.md's front matter (placeholder until the editor lands).

use std::path::Path;

use crate::scheduler::settings::KeyEdit;

/// Writes key-level edits into the workflow file (interim: refuses until the editor lands).
pub fn persist(path: &Path, edits: &[KeyEdit]) -> Result<(), String> {
    let _ = edits;
    Err(format!("editing {} is not available in this build yet", path.display()))
}
