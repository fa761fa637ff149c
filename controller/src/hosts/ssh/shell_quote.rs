//! Quoting for remote command lines: everything the controller runs on a host goes through the login
//! user's shell as one string, so every argument that is not a fixed word is quoted here.

/// Quotes `word` for a POSIX shell: returned as is when it only has characters no shell treats
/// specially, else in single quotes (an embedded `'` becomes `'\''`).
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '@' | '%' | '+' | ','));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `sh -lc '<script>'`: runs `script` with `sh` as a login shell, so that PATH and the rest of the
/// login profile count (a tool installed under `~/.local/bin` by the profile is found), whatever the
/// user's own login shell is.
pub fn login_shell_command(script: &str) -> String {
    format!("sh -lc {}", shell_quote(script))
}

/// Renders a path for a shell script, expanding a leading `~` or `~/` to `$HOME` (quoted so that a
/// home with spaces still works) and quoting the rest.
pub fn shell_path(path: &str) -> String {
    if path == "~" {
        "\"$HOME\"".to_string()
    } else if let Some(rest) = path.strip_prefix("~/") {
        format!("\"$HOME\"/{}", shell_quote(rest))
    } else {
        shell_quote(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(shell_quote("itervox-worker"), "itervox-worker");
        assert_eq!(shell_quote("/usr/local/bin/x"), "/usr/local/bin/x");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(id)"), "'$(id)'");
        assert_eq!(shell_quote("~/x"), "'~/x'");
    }

    #[test]
    fn paths_expand_home() {
        assert_eq!(shell_path("~"), "\"$HOME\"");
        assert_eq!(shell_path("~/.itervox/workspaces"), "\"$HOME\"/.itervox/workspaces");
        assert_eq!(shell_path("~/my dir"), "\"$HOME\"/'my dir'");
        assert_eq!(shell_path("/srv/x y"), "'/srv/x y'");
        assert_eq!(shell_path("~user/x"), "'~user/x'");
    }

    #[test]
    fn login_shell_wraps_in_one_word() {
        assert_eq!(login_shell_command("echo 'hi'"), r"sh -lc 'echo '\''hi'\'''");
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        for word in [
            "plain",
            "a b",
            "it's",
            "$(touch /nonexistent)",
            "`x`",
            "a\nb",
            "\\",
            "\"",
            "",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(word)))
                .output()
                .expect("sh runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout), word);
        }
    }
}
