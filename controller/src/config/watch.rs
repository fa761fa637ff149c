//! Hot reload of WORKFLOW.md (placeholder until the watcher lands).
