//! Strict Liquid rendering of the prompt template (placeholder until the renderer lands).
