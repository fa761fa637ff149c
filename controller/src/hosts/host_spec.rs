//! `HostSpec`: a build host named as `[user@]host[:port]` (IPv6 as `[addr]:port`), parsed explicitly and
//! strictly so that a host string can never smuggle options or shell syntax anywhere.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::config::SshConfig;

/// The SSH port used when a host string names none.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// Characters refused anywhere in a host string: they mean something to a shell or to `ssh`'s own
/// option parsing, and no host or user name needs them.
const SHELL_METACHARACTERS: &[char] = &[
    ';', '&', '|', '$', '`', '\\', '\'', '"', '<', '>', '(', ')', '{', '}', '*', '?', '!', '#', '~', ',', '=',
];

/// A build host: login user (when written), host name or address, and port.
///
/// `host` is stored lower-cased (DNS names are case-insensitive) and without IPv6 brackets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostSpec {
    /// The user written before `@`; `None` means "the default user" (see [`HostSpec::login_user`]).
    pub user: Option<String>,
    /// Host name, IPv4 address or IPv6 address (no brackets).
    pub host: String,
    /// TCP port, 22 when not written.
    pub port: u16,
}

/// Why a host string was refused. Every message quotes the string and says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostSpecError {
    #[error("host is empty: write it as [user@]host[:port]")]
    Empty,
    #[error("host {input:?} contains whitespace: write it as [user@]host[:port] without spaces")]
    Whitespace { input: String },
    #[error("host {input:?} contains {ch:?}, which is not allowed in a host string (shell or ssh syntax)")]
    ShellMetacharacter { input: String, ch: char },
    #[error("host {input:?} contains the control character {ch:?}")]
    ControlCharacter { input: String, ch: char },
    #[error("host {input:?} starts with '-', which ssh tools would read as an option")]
    LeadingDash { input: String },
    #[error("host {input:?} has more than one '@': write it as [user@]host[:port]")]
    TooManyAt { input: String },
    #[error("host {input:?} has an empty user before '@'")]
    EmptyUser { input: String },
    #[error("host {input:?} has a user with the character {ch:?}: use letters, digits, '.', '_' and '-'")]
    BadUser { input: String, ch: char },
    #[error("host {input:?} has no host name")]
    EmptyHost { input: String },
    #[error("host {input:?} has a host name with the character {ch:?}: use letters, digits, '.', '_' and '-'")]
    BadHostName { input: String, ch: char },
    #[error("host {input:?} has a bad port {port:?}: expected a number from 1 to 65535")]
    BadPort { input: String, port: String },
    #[error("host {input:?} has an unclosed '[': write IPv6 addresses as [addr] or [addr]:port")]
    UnclosedBracket { input: String },
    #[error("host {input:?} has {addr:?} in brackets, which is not an IPv6 address")]
    BadIpv6 { input: String, addr: String },
    #[error("host {input:?} has unexpected text {rest:?} after ']': only :port may follow")]
    AfterBracket { input: String, rest: String },
    #[error("host {input:?} looks like an IPv6 address with a port: write it as [addr]:port")]
    AmbiguousIpv6 { input: String },
    #[error("no login user for host {host}: set ssh.user in WORKFLOW.md or write the host as user@{host}")]
    NoUser { host: String },
}

impl HostSpec {
    /// Parses `[user@]host[:port]`; IPv6 addresses as `[addr]` or `[addr]:port` (a bare IPv6 address
    /// without a port is accepted too). Surrounding whitespace is ignored; anything else unusual is an
    /// error naming what is wrong.
    pub fn parse(input: &str) -> Result<HostSpec, HostSpecError> {
        let input = input.trim();
        let owned = || input.to_string();
        if input.is_empty() {
            return Err(HostSpecError::Empty);
        }
        for ch in input.chars() {
            if ch.is_whitespace() {
                return Err(HostSpecError::Whitespace { input: owned() });
            }
            if ch.is_control() {
                return Err(HostSpecError::ControlCharacter { input: owned(), ch });
            }
            if SHELL_METACHARACTERS.contains(&ch) {
                return Err(HostSpecError::ShellMetacharacter { input: owned(), ch });
            }
        }
        if input.starts_with('-') {
            return Err(HostSpecError::LeadingDash { input: owned() });
        }
        let (user, rest) = match input.matches('@').count() {
            0 => (None, input),
            1 => {
                let (user, rest) = input.split_once('@').unwrap_or(("", input));
                (Some(user), rest)
            }
            _ => return Err(HostSpecError::TooManyAt { input: owned() }),
        };
        let user = match user {
            None => None,
            Some("") => return Err(HostSpecError::EmptyUser { input: owned() }),
            Some(user) => {
                if let Some(ch) = user
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
                {
                    return Err(HostSpecError::BadUser { input: owned(), ch });
                }
                Some(user.to_string())
            }
        };
        let (host, port) = split_host_port(input, rest)?;
        if host.is_empty() {
            return Err(HostSpecError::EmptyHost { input: owned() });
        }
        if host.starts_with('-') {
            return Err(HostSpecError::LeadingDash { input: owned() });
        }
        Ok(HostSpec {
            user,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The string used as this host's key in maps and in the API: the canonical form (`Display`).
    /// Two strings naming the same user, host and port give the same key (`Host:22` and `host` do).
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// Whether the host is an IPv6 address (written in brackets when a port follows).
    pub fn is_ipv6(&self) -> bool {
        self.host.contains(':')
    }

    /// The user to log in as: the one written in the spec, else `ssh.user`, else the user running the
    /// controller.
    pub fn login_user(&self, ssh: &SshConfig) -> Result<String, HostSpecError> {
        if let Some(user) = &self.user {
            return Ok(user.clone());
        }
        if let Some(user) = ssh.user.as_deref().filter(|u| !u.is_empty()) {
            return Ok(user.to_string());
        }
        current_user().ok_or_else(|| HostSpecError::NoUser { host: self.to_string() })
    }

    /// The name OpenSSH uses for this host in known_hosts: `host` on port 22, `[host]:port` otherwise.
    pub fn known_hosts_name(&self) -> String {
        crate::hosts::known_hosts::host_name(&self.host, self.port)
    }

    /// `host:port` for display and for socket address lookup (`[addr]:port` for IPv6).
    pub fn address(&self) -> String {
        if self.is_ipv6() {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The name of the user running this process (passwd entry of the real uid, else `$USER`).
pub fn current_user() -> Option<String> {
    if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::getuid()) {
        return Some(user.name);
    }
    std::env::var("USER").ok().filter(|u| !u.is_empty())
}

/// Splits the part after `user@` into host and port, handling `[v6]:port`, bare IPv6 and `host:port`.
fn split_host_port<'a>(input: &str, rest: &'a str) -> Result<(&'a str, u16), HostSpecError> {
    let owned = || input.to_string();
    if let Some(inner) = rest.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else {
            return Err(HostSpecError::UnclosedBracket { input: owned() });
        };
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(HostSpecError::BadIpv6 {
                input: owned(),
                addr: addr.to_string(),
            });
        }
        let port = match after {
            "" => DEFAULT_SSH_PORT,
            _ => match after.strip_prefix(':') {
                Some(port) => parse_port(input, port)?,
                None => {
                    return Err(HostSpecError::AfterBracket {
                        input: owned(),
                        rest: after.to_string(),
                    });
                }
            },
        };
        return Ok((addr, port));
    }
    if let Some(ch) = rest.chars().find(|c| matches!(c, '[' | ']')) {
        return Err(HostSpecError::BadHostName { input: owned(), ch });
    }
    match rest.matches(':').count() {
        0 => {
            check_host_name(input, rest)?;
            Ok((rest, DEFAULT_SSH_PORT))
        }
        1 => {
            let (host, port) = rest.split_once(':').unwrap_or((rest, ""));
            check_host_name(input, host)?;
            Ok((host, parse_port(input, port)?))
        }
        _ => {
            if rest.parse::<Ipv6Addr>().is_ok() {
                Ok((rest, DEFAULT_SSH_PORT))
            } else {
                Err(HostSpecError::AmbiguousIpv6 { input: owned() })
            }
        }
    }
}

fn check_host_name(input: &str, host: &str) -> Result<(), HostSpecError> {
    match host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(ch) => Err(HostSpecError::BadHostName {
            input: input.to_string(),
            ch,
        }),
        None => Ok(()),
    }
}

fn parse_port(input: &str, port: &str) -> Result<u16, HostSpecError> {
    let bad = || HostSpecError::BadPort {
        input: input.to_string(),
        port: port.to_string(),
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(p) => Ok(p),
    }
}

impl fmt::Display for HostSpec {
    /// The canonical string: `user@` when a user was written, IPv6 in brackets only when a port
    /// follows, `:port` only when it is not 22. It parses back to the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        match (self.is_ipv6(), self.port) {
            (_, DEFAULT_SSH_PORT) => write!(f, "{}", self.host),
            (true, port) => write!(f, "[{}]:{port}", self.host),
            (false, port) => write!(f, "{}:{port}", self.host),
        }
    }
}

impl FromStr for HostSpec {
    type Err = HostSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostSpec::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(user: Option<&str>, host: &str, port: u16) -> HostSpec {
        HostSpec {
            user: user.map(String::from),
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn parses_valid_host_strings() {
        let cases: &[(&str, HostSpec, &str)] = &[
            ("build1", spec(None, "build1", 22), "build1"),
            (
                "build1.example.com",
                spec(None, "build1.example.com", 22),
                "build1.example.com",
            ),
            ("root@127.0.0.2", spec(Some("root"), "127.0.0.2", 22), "root@127.0.0.2"),
            (
                "root@127.0.0.2:2222",
                spec(Some("root"), "127.0.0.2", 2222),
                "root@127.0.0.2:2222",
            ),
            ("host:22", spec(None, "host", 22), "host"),
            (
                "Build-1.Example.COM:2200",
                spec(None, "build-1.example.com", 2200),
                "build-1.example.com:2200",
            ),
            (
                "deploy.user_1@h",
                spec(Some("deploy.user_1"), "h", 22),
                "deploy.user_1@h",
            ),
            ("[::1]:2222", spec(None, "::1", 2222), "[::1]:2222"),
            ("[::1]", spec(None, "::1", 22), "::1"),
            ("::1", spec(None, "::1", 22), "::1"),
            (
                "ci@[fe80::1]:65535",
                spec(Some("ci"), "fe80::1", 65535),
                "ci@[fe80::1]:65535",
            ),
            ("  host:1  ", spec(None, "host", 1), "host:1"),
        ];
        for (input, want, display) in cases {
            let got = HostSpec::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(&got, want, "{input:?}");
            assert_eq!(got.to_string(), *display, "{input:?}");
            assert_eq!(
                HostSpec::parse(&got.to_string()).as_ref(),
                Ok(&got),
                "{input:?} round trip"
            );
        }
    }

    #[test]
    fn refuses_bad_host_strings_naming_the_problem() {
        type Check = fn(&HostSpecError) -> bool;
        let cases: &[(&str, Check, &str)] = &[
            ("", |e| matches!(e, HostSpecError::Empty), "empty"),
            ("   ", |e| matches!(e, HostSpecError::Empty), "empty"),
            ("a b", |e| matches!(e, HostSpecError::Whitespace { .. }), "whitespace"),
            ("a\tb", |e| matches!(e, HostSpecError::Whitespace { .. }), "whitespace"),
            (
                "host;rm",
                |e| matches!(e, HostSpecError::ShellMetacharacter { ch: ';', .. }),
                "';'",
            ),
            (
                "$(id)@h",
                |e| matches!(e, HostSpecError::ShellMetacharacter { ch: '$', .. }),
                "'$'",
            ),
            (
                "h`x`",
                |e| matches!(e, HostSpecError::ShellMetacharacter { ch: '`', .. }),
                "'`'",
            ),
            (
                "h|x",
                |e| matches!(e, HostSpecError::ShellMetacharacter { ch: '|', .. }),
                "'|'",
            ),
            (
                "-oProxyCommand=x",
                |e| matches!(e, HostSpecError::ShellMetacharacter { ch: '=', .. }),
                "'='",
            ),
            (
                "-oProxyCommand",
                |e| matches!(e, HostSpecError::LeadingDash { .. }),
                "starts with '-'",
            ),
            (
                "u@-h",
                |e| matches!(e, HostSpecError::LeadingDash { .. }),
                "starts with '-'",
            ),
            (
                "a@b@c",
                |e| matches!(e, HostSpecError::TooManyAt { .. }),
                "more than one '@'",
            ),
            ("@h", |e| matches!(e, HostSpecError::EmptyUser { .. }), "empty user"),
            ("u@", |e| matches!(e, HostSpecError::EmptyHost { .. }), "no host name"),
            (":22", |e| matches!(e, HostSpecError::EmptyHost { .. }), "no host name"),
            (
                "u/x@h",
                |e| matches!(e, HostSpecError::BadUser { ch: '/', .. }),
                "user with",
            ),
            (
                "h/x",
                |e| matches!(e, HostSpecError::BadHostName { ch: '/', .. }),
                "host name with",
            ),
            ("h:", |e| matches!(e, HostSpecError::BadPort { .. }), "bad port"),
            ("h:0", |e| matches!(e, HostSpecError::BadPort { .. }), "bad port"),
            ("h:65536", |e| matches!(e, HostSpecError::BadPort { .. }), "bad port"),
            ("h:22x", |e| matches!(e, HostSpecError::BadPort { .. }), "bad port"),
            ("h:+22", |e| matches!(e, HostSpecError::BadPort { .. }), "bad port"),
            (
                "[::1",
                |e| matches!(e, HostSpecError::UnclosedBracket { .. }),
                "unclosed",
            ),
            (
                "[nothex]:22",
                |e| matches!(e, HostSpecError::BadIpv6 { .. }),
                "not an IPv6",
            ),
            (
                "[::1]x",
                |e| matches!(e, HostSpecError::AfterBracket { .. }),
                "after ']'",
            ),
            (
                "fe80::1:zz",
                |e| matches!(e, HostSpecError::AmbiguousIpv6 { .. }),
                "[addr]:port",
            ),
            (
                "h]",
                |e| matches!(e, HostSpecError::BadHostName { ch: ']', .. }),
                "host name with",
            ),
            (
                "h\u{7}",
                |e| matches!(e, HostSpecError::ControlCharacter { .. }),
                "control",
            ),
        ];
        for (input, check, message_part) in cases {
            let err = HostSpec::parse(input).expect_err(input);
            assert!(check(&err), "{input:?} gave {err:?}");
            assert!(
                err.to_string().contains(message_part),
                "{input:?}: message {:?} should mention {message_part:?}",
                err.to_string()
            );
        }
    }

    #[test]
    fn key_is_canonical() {
        assert_eq!(
            HostSpec::parse("Host:22").map(|s| s.key()),
            HostSpec::parse("host").map(|s| s.key())
        );
        assert_ne!(
            HostSpec::parse("a@host").map(|s| s.key()),
            HostSpec::parse("host").map(|s| s.key())
        );
    }

    #[test]
    fn login_user_prefers_spec_then_config_then_current_user() {
        let mut ssh = SshConfig::default();
        let with_user = HostSpec::parse("alice@h").expect("parse");
        let without = HostSpec::parse("h").expect("parse");
        ssh.user = Some("bob".into());
        assert_eq!(with_user.login_user(&ssh).as_deref(), Ok("alice"));
        assert_eq!(without.login_user(&ssh).as_deref(), Ok("bob"));
        ssh.user = None;
        assert_eq!(without.login_user(&ssh).ok(), current_user());
    }

    #[test]
    fn known_hosts_name_brackets_non_default_ports() {
        let name = |s: &str| HostSpec::parse(s).expect("parse").known_hosts_name();
        assert_eq!(name("root@127.0.0.2"), "127.0.0.2");
        assert_eq!(name("root@127.0.0.2:2222"), "[127.0.0.2]:2222");
        assert_eq!(name("[::1]:2222"), "[::1]:2222");
        assert_eq!(name("::1"), "::1");
    }
}
