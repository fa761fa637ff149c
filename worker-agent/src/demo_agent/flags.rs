//! The demo agent's command line: the flags of Claude Code it understands (`-p`, `--output-format`,
//! `--verbose`, `--resume <id>`, the permission flags); anything else is ignored, as are positional
//! words (the binary's own name and `demo-agent` may be passed along).

/// What the flags asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemoFlags {
    /// The session to continue.
    pub resume: Option<String>,
    /// Claude Code's name of the permission mode, for the `init` line.
    pub permission_mode: String,
}

/// Flags of Claude Code that take a value (skipped together with it).
const WITH_VALUE: &[&str] = &[
    "--output-format",
    "--input-format",
    "--model",
    "--max-turns",
    "--append-system-prompt",
    "--system-prompt",
    "--allowedTools",
    "--allowed-tools",
    "--disallowedTools",
    "--disallowed-tools",
    "--settings",
    "--debug-file",
];

/// Reads Claude Code-style flags.
pub fn parse(args: &[String]) -> DemoFlags {
    let mut flags = DemoFlags {
        resume: None,
        permission_mode: "default".into(),
    };
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        match arg {
            "--resume" | "-r" => {
                flags.resume = args.get(i + 1).filter(|v| !v.starts_with('-')).cloned();
                i += if flags.resume.is_some() { 2 } else { 1 };
                continue;
            }
            "--permission-mode" => {
                if let Some(mode) = args.get(i + 1) {
                    flags.permission_mode = mode.clone();
                }
                i += 2;
                continue;
            }
            "--dangerously-skip-permissions" => flags.permission_mode = "bypassPermissions".into(),
            _ => {
                if let Some(value) = arg.strip_prefix("--resume=") {
                    flags.resume = Some(value.to_string()).filter(|v| !v.is_empty());
                } else if let Some(mode) = arg.strip_prefix("--permission-mode=") {
                    flags.permission_mode = mode.to_string();
                } else if WITH_VALUE.contains(&arg) {
                    i += 2;
                    continue;
                }
            }
        }
        i += 1;
    }
    flags
}
