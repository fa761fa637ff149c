//! Command-line building for every backend, permission mode and host, and a real login shell running
//! the quoted command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use itervox_protocol::worker::{Backend, PermissionMode};

use crate::agent::command_line::{quote_fish, quote_posix, split_words};
use crate::agent::{AgentError, LaunchHost, TurnRequest, build_command_on};

fn host(shell: Option<&str>, is_root: bool) -> LaunchHost {
    LaunchHost {
        login_shell: shell.map(PathBuf::from),
        is_root,
    }
}

struct Case {
    backend: Backend,
    command: &'static str,
    resume: Option<&'static str>,
    mode: PermissionMode,
    root: bool,
    program: &'static str,
    args: &'static [&'static str],
    is_sandbox: bool,
}

fn request<'a>(
    backend: Backend,
    command: &'a str,
    resume: Option<&'a str>,
    mode: PermissionMode,
    env: &'a BTreeMap<String, String>,
) -> TurnRequest<'a> {
    TurnRequest {
        backend,
        command,
        prompt: "Fix ABC-1",
        resume_ref: resume,
        permission_mode: mode,
        workspace: Path::new("/work/trees/ABC-1"),
        env,
        log_dir: Path::new("/var/log/itervox/ABC-1"),
        self_exe: Path::new("/usr/bin/itervox-worker"),
    }
}

#[test]
fn command_lines_by_backend_mode_and_host() {
    use Backend::*;
    use PermissionMode::*;
    let cases = [
        Case {
            backend: Claude,
            command: "/opt/bin/claude",
            resume: None,
            mode: Bypass,
            root: false,
            program: "/opt/bin/claude",
            args: &[
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--dangerously-skip-permissions",
            ],
            is_sandbox: false,
        },
        Case {
            backend: Claude,
            command: "/opt/bin/claude --model opus",
            resume: Some("3fb6fe08"),
            mode: Sandbox,
            root: true,
            program: "/opt/bin/claude",
            args: &[
                "--model",
                "opus",
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-mode",
                "acceptEdits",
                "--resume",
                "3fb6fe08",
            ],
            // Only bypass mode needs it.
            is_sandbox: false,
        },
        Case {
            backend: Claude,
            command: "/opt/bin/claude",
            resume: None,
            mode: Bypass,
            root: true,
            program: "/opt/bin/claude",
            args: &[
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--dangerously-skip-permissions",
            ],
            is_sandbox: true,
        },
        Case {
            backend: Claude,
            command: "claude",
            resume: Some("s-1"),
            mode: Bypass,
            root: false,
            program: "/bin/sh",
            args: &[
                "-lc",
                "exec claude -p --output-format stream-json --verbose --dangerously-skip-permissions --resume s-1",
            ],
            is_sandbox: false,
        },
        Case {
            backend: Codex,
            command: "/opt/bin/codex",
            resume: None,
            mode: Bypass,
            root: true,
            program: "/opt/bin/codex",
            args: &[
                "exec",
                "--json",
                "--dangerously-bypass-approvals-and-sandbox",
                "--skip-git-repo-check",
                "-",
            ],
            is_sandbox: false,
        },
        Case {
            backend: Codex,
            command: "/opt/bin/codex -m gpt-5.5",
            resume: Some("01a242a5-893f"),
            mode: Sandbox,
            root: false,
            program: "/opt/bin/codex",
            args: &[
                "exec",
                "-m",
                "gpt-5.5",
                "--json",
                "--sandbox",
                "workspace-write",
                "-c",
                "approval_policy=\"never\"",
                "--skip-git-repo-check",
                "resume",
                "01a242a5-893f",
                "-",
            ],
            is_sandbox: false,
        },
        Case {
            // `exec` already in the configured command is not doubled.
            backend: Codex,
            command: "/opt/bin/codex exec --disable plugins",
            resume: None,
            mode: Bypass,
            root: false,
            program: "/opt/bin/codex",
            args: &[
                "exec",
                "--disable",
                "plugins",
                "--json",
                "--dangerously-bypass-approvals-and-sandbox",
                "--skip-git-repo-check",
                "-",
            ],
            is_sandbox: false,
        },
        Case {
            backend: Codex,
            command: "codex",
            resume: None,
            mode: Sandbox,
            root: false,
            program: "/bin/sh",
            args: &[
                "-lc",
                "exec codex exec --json --sandbox workspace-write -c 'approval_policy=\"never\"' --skip-git-repo-check -",
            ],
            is_sandbox: false,
        },
        Case {
            // The demo agent is our own binary: exec'd directly, no permission flags, whatever the command.
            backend: Demo,
            command: "",
            resume: Some("s-9"),
            mode: Bypass,
            root: true,
            program: "/usr/bin/itervox-worker",
            args: &[
                "demo-agent",
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--resume",
                "s-9",
            ],
            is_sandbox: false,
        },
    ];
    let mut env = BTreeMap::new();
    env.insert("ITERVOX_ISSUE_IDENTIFIER".to_string(), "ABC-1".to_string());
    env.insert("ITERVOX_AGENT".to_string(), "0".to_string());
    for case in cases {
        let req = request(case.backend, case.command, case.resume, case.mode, &env);
        let cmd = build_command_on(&req, &host(None, case.root)).expect(case.command);
        let what = format!(
            "{:?} {:?} {:?} root={}",
            case.backend, case.command, case.mode, case.root
        );
        assert_eq!(cmd.program, PathBuf::from(case.program), "{what}");
        assert_eq!(cmd.args, case.args, "{what}");
        assert_eq!(cmd.stdin, b"Fix ABC-1", "{what}");
        assert_eq!(cmd.cwd, PathBuf::from("/work/trees/ABC-1"), "{what}");
        assert_eq!(cmd.env.get("ITERVOX_AGENT").map(String::as_str), Some("1"), "{what}");
        assert_eq!(
            cmd.env.get("ITERVOX_ISSUE_IDENTIFIER").map(String::as_str),
            Some("ABC-1"),
            "{what}"
        );
        assert_eq!(cmd.env.contains_key("IS_SANDBOX"), case.is_sandbox, "{what}");
        let log_dir = cmd.env.get("CLAUDE_CODE_LOG_DIR").map(String::as_str);
        match case.backend {
            Claude | Demo => assert_eq!(log_dir, Some("/var/log/itervox/ABC-1"), "{what}"),
            Codex => assert_eq!(log_dir, None, "{what}"),
        }
    }
}

#[test]
fn request_env_can_set_is_sandbox_itself() {
    let mut env = BTreeMap::new();
    env.insert("IS_SANDBOX".to_string(), "0".to_string());
    let req = request(Backend::Claude, "/opt/claude", None, PermissionMode::Bypass, &env);
    let cmd = build_command_on(&req, &host(None, true)).unwrap();
    assert_eq!(cmd.env.get("IS_SANDBOX").map(String::as_str), Some("0"));
}

#[test]
fn refuses_nul_in_prompt_empty_and_unbalanced_commands() {
    let env = BTreeMap::new();
    let mut req = request(Backend::Claude, "claude", None, PermissionMode::Bypass, &env);
    req.prompt = "a\0b";
    assert_eq!(build_command_on(&req, &host(None, false)), Err(AgentError::NulInPrompt));
    for backend in [Backend::Claude, Backend::Codex] {
        let req = request(backend, "   ", None, PermissionMode::Bypass, &env);
        assert_eq!(
            build_command_on(&req, &host(None, false)),
            Err(AgentError::EmptyCommand)
        );
    }
    let req = request(Backend::Codex, "codex 'exec", None, PermissionMode::Bypass, &env);
    let err = build_command_on(&req, &host(None, false)).unwrap_err();
    assert!(
        matches!(&err, AgentError::BadCommand { command, reason } if command == "codex 'exec" && reason.contains("single quote")),
        "{err:?}"
    );
}

#[test]
fn splits_commands_like_a_shell() {
    let cases: &[(&str, &[&str])] = &[
        ("claude", &["claude"]),
        ("  claude   --model  opus ", &["claude", "--model", "opus"]),
        ("'/opt/my tools/claude' -p", &["/opt/my tools/claude", "-p"]),
        (r#"wrap --arg "a \"b\" \$c \n""#, &["wrap", "--arg", r#"a "b" $c \n"#]),
        (r"a\ b c", &["a b", "c"]),
        ("x ''", &["x", ""]),
        (r#"it"'s"' x'"#, &["it's x"]),
    ];
    for (input, want) in cases {
        assert_eq!(split_words(input).unwrap(), *want, "{input}");
    }
    assert!(matches!(split_words("a \"b"), Err(AgentError::BadCommand { .. })));
    assert!(matches!(split_words("a \\"), Err(AgentError::BadCommand { .. })));
    assert_eq!(split_words(""), Err(AgentError::EmptyCommand));
}

#[test]
fn quotes_for_posix_and_fish() {
    assert_eq!(quote_posix("claude"), "claude");
    assert_eq!(quote_posix("--model=x/y.z"), "--model=x/y.z");
    assert_eq!(quote_posix("a b"), "'a b'");
    assert_eq!(quote_posix("it's"), r"'it'\''s'");
    assert_eq!(quote_posix(""), "''");
    assert_eq!(quote_posix("$HOME;rm"), "'$HOME;rm'");
    assert_eq!(quote_fish("it's"), r"'it\'s'");
    assert_eq!(quote_fish(r"a\b"), r"'a\\b'");
}

#[test]
fn picks_the_login_shell_or_falls_back_to_sh() {
    let env = BTreeMap::new();
    let req = request(Backend::Claude, "claude", None, PermissionMode::Bypass, &env);
    // An existing POSIX shell is used as it is.
    let cmd = build_command_on(&req, &host(Some("/bin/sh"), false)).unwrap();
    assert_eq!(cmd.program, PathBuf::from("/bin/sh"));
    assert_eq!(cmd.args[0], "-lc");
    // A missing shell, a relative one or one whose syntax we do not know: /bin/sh.
    for shell in ["/no/such/zsh", "zsh", "/bin/true"] {
        let cmd = build_command_on(&req, &host(Some(shell), false)).unwrap();
        assert_eq!(cmd.program, PathBuf::from("/bin/sh"), "{shell}");
    }
}

/// The quoted line survives a real login shell: every word arrives as it was.
#[test]
fn the_login_shell_passes_every_word_through() {
    let env = BTreeMap::new();
    let tricky = r#"it's "quoted" $HOME `id` ; echo pwned \ end"#;
    let req = request(
        Backend::Claude,
        r"printf '[%s]\n' 'two words'",
        Some(tricky),
        PermissionMode::Sandbox,
        &env,
    );
    let cmd = build_command_on(&req, &host(Some("/bin/sh"), false)).unwrap();
    assert_eq!(cmd.program, PathBuf::from("/bin/sh"));
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let want: String = [
        "two words",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-mode",
        "acceptEdits",
        "--resume",
        tricky,
    ]
    .iter()
    .map(|w| format!("[{w}]\n"))
    .collect();
    assert_eq!(printed, want);
}
