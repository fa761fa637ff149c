//! The scripted demo agent (`itervox-worker demo-agent`): placeholder until it lands.

/// Runs the demo agent with its command-line arguments; returns the process exit code.
pub fn main(args: Vec<String>) -> i32 {
    let _ = args;
    1
}
