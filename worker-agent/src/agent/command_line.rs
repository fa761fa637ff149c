//! Turning a configured agent command (`claude --model x`, `/opt/bin/claude-wrapper`) into a program and
//! arguments: splitting it into words like a POSIX shell would, and running a program that is not an
//! absolute path through the user's login shell so version-manager installs (nvm, asdf) are found.

use std::path::{Path, PathBuf};

use super::AgentError;

/// What the launch depends on about the host the worker runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchHost {
    /// The user's login shell (`$SHELL`); `None` means `/bin/sh`.
    pub login_shell: Option<PathBuf>,
    /// True when the worker runs as root (Claude Code then needs `IS_SANDBOX=1` to skip permissions).
    pub is_root: bool,
}

impl LaunchHost {
    /// This process's host: `$SHELL` and the effective uid.
    pub fn current() -> LaunchHost {
        LaunchHost {
            login_shell: std::env::var_os("SHELL").filter(|s| !s.is_empty()).map(PathBuf::from),
            is_root: nix::unistd::geteuid().is_root(),
        }
    }
}

/// Splits a command line into words: whitespace separates words, single quotes keep everything
/// literally, double quotes keep everything but `\"`, `\\`, `\$` and `` \` `` escapes, and a backslash
/// outside quotes escapes the next character.
pub fn split_words(command: &str) -> Result<Vec<String>, AgentError> {
    let bad = |reason: &str| AgentError::BadCommand {
        command: command.to_string(),
        reason: reason.to_string(),
    };
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(bad("unterminated single quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(bad("unterminated double quote")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(bad("unterminated double quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(bad("trailing backslash")),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err(AgentError::EmptyCommand);
    }
    Ok(words)
}

/// Which quoting rules the login shell follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShellFamily {
    Posix,
    Fish,
}

/// The shell to launch through and its quoting family. Shells whose syntax we do not know (nushell,
/// PowerShell, …) and shells that do not exist fall back to `/bin/sh`.
fn login_shell(host: &LaunchHost) -> (PathBuf, ShellFamily) {
    const POSIX: &[&str] = &[
        "sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "yash", "oksh", "loksh",
    ];
    if let Some(shell) = &host.login_shell {
        let name = shell.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if shell.is_absolute() && shell.exists() {
            if POSIX.contains(&name) {
                return (shell.clone(), ShellFamily::Posix);
            }
            if name == "fish" {
                return (shell.clone(), ShellFamily::Fish);
            }
        }
    }
    (PathBuf::from("/bin/sh"), ShellFamily::Posix)
}

/// True when `word` needs no quoting in either shell family.
fn is_plain(word: &str) -> bool {
    !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
}

/// `word` quoted for a POSIX shell: single quotes, with `'` written as `'\''`.
pub fn quote_posix(word: &str) -> String {
    if is_plain(word) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `word` quoted for fish: single quotes, in which `\` and `'` are escaped with a backslash.
pub fn quote_fish(word: &str) -> String {
    if is_plain(word) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\\', r"\\").replace('\'', r"\'"))
}

/// The program and arguments that run `words`: exec'd directly when the program is an absolute path,
/// else `<login shell> -lc 'exec <quoted words>'`.
pub fn launch(words: Vec<String>, host: &LaunchHost) -> (PathBuf, Vec<String>) {
    let mut words = words.into_iter();
    let program = words.next().unwrap_or_default();
    if Path::new(&program).is_absolute() {
        return (PathBuf::from(program), words.collect());
    }
    let (shell, family) = login_shell(host);
    let quote = match family {
        ShellFamily::Posix => quote_posix,
        ShellFamily::Fish => quote_fish,
    };
    let line = std::iter::once(program)
        .chain(words)
        .map(|w| quote(&w))
        .collect::<Vec<_>>()
        .join(" ");
    let args = match family {
        ShellFamily::Posix => vec!["-lc".to_string(), format!("exec {line}")],
        ShellFamily::Fish => vec!["-l".to_string(), "-c".to_string(), format!("exec {line}")],
    };
    (shell, args)
}
