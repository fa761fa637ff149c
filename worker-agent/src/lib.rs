//! itervox-worker library (skeleton).
