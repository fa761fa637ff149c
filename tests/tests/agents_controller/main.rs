//! The real agent CLIs (Claude Code, Codex) and the demo agent under the real controller, driven and
//! observed through the HTTP API: sessions, resumes, questions, subagents, limits, and the per-issue
//! controls (profile and backend overrides, agent mode, reviewer, open-PR guard, tracker-comment input).

mod support;

mod claude;
mod codex;
mod controls;
mod ssh;
