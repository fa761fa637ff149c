//! Comment-preserving, atomic edits of WORKFLOW.md's front matter (placeholder until the editor lands).
