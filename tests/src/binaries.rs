//! Finds the workspace's built binaries (`itervox`, `itervox-worker`) for tests that run them as real
//! processes. `scripts/test.sh` builds them before the suite runs.

use std::path::PathBuf;

/// The folder holding the binaries of the profile the tests were built with (`target/debug`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> -> target/debug
    let deps = exe.parent().expect("deps folder");
    deps.parent().expect("profile folder").to_path_buf()
}

/// Path of a workspace binary; panics with the command to run when it has not been built.
pub fn bin_path(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}
