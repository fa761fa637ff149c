//! The OpenSSH known_hosts file: parsing (hashed `|1|` names, `[host]:port`, comma-separated patterns
//! with `*`/`?` wildcards and `!` negation, `@revoked`, `@cert-authority`, tabs or spaces between
//! fields), checking a presented host key, and appending new entries in OpenSSH's format.
//!
//! russh ships a known_hosts check, but it splits fields on single spaces only and ignores markers (a
//! `@revoked` key is accepted), so this module parses the file itself.
//!
//! Matching follows OpenSSH with one deliberate difference: when the host has recorded keys but none
//! equals the presented one, the key counts as *changed* even if the recorded keys are of another type.
//! (OpenSSH would treat a key of a new type as unknown.) The SSH client asks for the recorded key
//! types first, so a host that still has its recorded key presents it; one that no longer does is
//! refused rather than silently trusted.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use russh::keys::ssh_encoding::base64::{Base64, Encoding};
use russh::keys::ssh_key::{Algorithm, PublicKey};

/// The name OpenSSH looks a host up by: `host` on port 22, `[host]:port` otherwise.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The result of checking a presented host key against the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// The key is recorded for this host on `line` (1-based).
    Known { line: usize },
    /// No key is recorded for this host.
    Unknown,
    /// Other keys are recorded for this host (the first on `line`), not this one.
    Changed { line: usize },
    /// The key is marked `@revoked` on `line`.
    Revoked { line: usize },
}

/// What [`verify`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The key was already recorded on `line`.
    Known { line: usize },
    /// The host was unknown and its key was appended to the file.
    Learned,
    /// The host is unknown and learning was not allowed.
    Unknown,
    /// Other keys are recorded for this host; the first is on `line`.
    Changed { line: usize },
    /// The key is marked `@revoked` on `line`.
    Revoked { line: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum KnownHostsError {
    #[error("cannot read known_hosts file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot record the host key of {host} in {path}: {source}")]
    Write {
        path: PathBuf,
        host: String,
        source: std::io::Error,
    },
}

/// A line's marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Revoked,
    CertAuthority,
}

/// The host field of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hosts {
    /// `|1|salt|hash`: HMAC-SHA1 of the host name keyed with the salt.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    /// Comma-separated patterns, possibly negated with `!`.
    Patterns(Vec<String>),
}

#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    marker: Option<Marker>,
    hosts: Hosts,
    key: PublicKey,
}

/// A parsed known_hosts file.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
    skipped: Vec<usize>,
}

impl KnownHosts {
    /// Reads and parses `path`; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<KnownHosts, KnownHostsError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(KnownHosts::parse(&String::from_utf8_lossy(&bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KnownHosts::default()),
            Err(source) => Err(KnownHostsError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses the text of a known_hosts file. Lines that cannot be parsed (unknown key types, bad
    /// base64, unknown markers) are skipped and remembered in [`KnownHosts::skipped_lines`].
    pub fn parse(text: &str) -> KnownHosts {
        let mut known = KnownHosts::default();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            match parse_line(line, trimmed) {
                Some(entry) => known.entries.push(entry),
                None => {
                    tracing::debug!(line, "Skipping a known_hosts line that does not parse.");
                    known.skipped.push(line);
                }
            }
        }
        known
    }

    /// 1-based numbers of the lines that were not understood.
    pub fn skipped_lines(&self) -> &[usize] {
        &self.skipped
    }

    /// Checks `key` presented by the host named `name` (as from [`host_name`]).
    pub fn check(&self, name: &str, key: &PublicKey) -> HostKeyStatus {
        let matching = || self.entries.iter().filter(|e| e.hosts.matches(name));
        if let Some(e) = matching().find(|e| e.marker == Some(Marker::Revoked) && same_key(&e.key, key)) {
            return HostKeyStatus::Revoked { line: e.line };
        }
        let plain = || matching().filter(|e| e.marker.is_none());
        if let Some(e) = plain().find(|e| same_key(&e.key, key)) {
            return HostKeyStatus::Known { line: e.line };
        }
        let same_type = plain().find(|e| e.key.algorithm() == key.algorithm());
        match same_type.or_else(|| plain().next()) {
            Some(e) => HostKeyStatus::Changed { line: e.line },
            None => HostKeyStatus::Unknown,
        }
    }

    /// The key types recorded for `name`, in file order without repeats: the client asks for these
    /// first so that the host presents a key that can be checked.
    pub fn algorithms_for(&self, name: &str) -> Vec<Algorithm> {
        let mut out: Vec<Algorithm> = Vec::new();
        for e in self
            .entries
            .iter()
            .filter(|e| e.marker.is_none() && e.hosts.matches(name))
        {
            let alg = e.key.algorithm();
            if !out.contains(&alg) {
                out.push(alg);
            }
        }
        out
    }
}

/// Serialises the process's appends so that two connections to the same new host record it once.
static APPEND_LOCK: Mutex<()> = Mutex::new(());

/// Checks `key` for `name` against the file at `path`; when the host is unknown and `learn` is set,
/// appends it (the `accept-new` policy). The check and the append happen under one process-wide lock.
pub fn verify(path: &Path, name: &str, key: &PublicKey, learn: bool) -> Result<Verification, KnownHostsError> {
    let _guard = APPEND_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match KnownHosts::load(path)?.check(name, key) {
        HostKeyStatus::Known { line } => Ok(Verification::Known { line }),
        HostKeyStatus::Changed { line } => Ok(Verification::Changed { line }),
        HostKeyStatus::Revoked { line } => Ok(Verification::Revoked { line }),
        HostKeyStatus::Unknown if !learn => Ok(Verification::Unknown),
        HostKeyStatus::Unknown => {
            append_unlocked(path, name, key)?;
            Ok(Verification::Learned)
        }
    }
}

/// Appends `name keytype base64` to the file, creating it (mode 0600, folder 0700) when missing and
/// starting on a new line when the file does not end with one.
pub fn append(path: &Path, name: &str, key: &PublicKey) -> Result<(), KnownHostsError> {
    let _guard = APPEND_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    append_unlocked(path, name, key)
}

/// One known_hosts line (without newline) recording `key` for `name`, unhashed.
pub fn entry_line(name: &str, key: &PublicKey) -> String {
    format!(
        "{name} {} {}",
        key.algorithm().as_str(),
        Base64::encode_string(&key_blob(key))
    )
}

/// `|1|salt|hash` for `name` with the given 20-byte salt, as `ssh-keygen -H` writes it.
pub fn hashed_name(name: &str, salt: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
    let tag = ring::hmac::sign(&key, name.as_bytes());
    format!(
        "|1|{}|{}",
        Base64::encode_string(salt),
        Base64::encode_string(tag.as_ref())
    )
}

fn append_unlocked(path: &Path, name: &str, key: &PublicKey) -> Result<(), KnownHostsError> {
    let write_err = |source| KnownHostsError::Write {
        path: path.to_path_buf(),
        host: name.to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(write_err)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(write_err)?;
    let len = file.metadata().map_err(write_err)?.len();
    let mut text = String::new();
    if len > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::End(-1)).map_err(write_err)?;
        file.read_exact(&mut last).map_err(write_err)?;
        if last[0] != b'\n' {
            text.push('\n');
        }
    }
    text.push_str(&entry_line(name, key));
    text.push('\n');
    // One write on an O_APPEND file: other processes appending at the same time cannot interleave.
    file.write_all(text.as_bytes()).map_err(write_err)?;
    file.sync_all().map_err(write_err)
}

fn key_blob(key: &PublicKey) -> Vec<u8> {
    key.to_bytes().unwrap_or_default()
}

fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

fn parse_line(line: usize, text: &str) -> Option<Entry> {
    let mut fields = text.split_ascii_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Some(Marker::Revoked),
        "@cert-authority" => Some(Marker::CertAuthority),
        m if m.starts_with('@') => return None,
        _ => None,
    };
    if marker.is_some() {
        first = fields.next()?;
    }
    let hosts = parse_hosts(first)?;
    let key_type = fields.next()?;
    let blob = fields.next()?;
    let key = PublicKey::from_openssh(&format!("{key_type} {blob}")).ok()?;
    Some(Entry {
        line,
        marker,
        hosts,
        key,
    })
}

fn parse_hosts(field: &str) -> Option<Hosts> {
    if let Some(rest) = field.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        let salt = Base64::decode_vec(salt).ok()?;
        let hash = Base64::decode_vec(hash).ok()?;
        return Some(Hosts::Hashed { salt, hash });
    }
    if field.starts_with('|') {
        return None;
    }
    Some(Hosts::Patterns(
        field.split(',').filter(|p| !p.is_empty()).map(str::to_string).collect(),
    ))
}

impl Hosts {
    fn matches(&self, name: &str) -> bool {
        match self {
            Hosts::Hashed { salt, hash } => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
                ring::hmac::verify(&key, name.as_bytes(), hash).is_ok()
            }
            Hosts::Patterns(patterns) => {
                // OpenSSH: a negated pattern that matches rules the line out; otherwise any positive
                // match applies it.
                let name = name.to_ascii_lowercase();
                let mut positive = false;
                for pattern in patterns {
                    match pattern.strip_prefix('!') {
                        Some(negated) if wildcard_match(&negated.to_ascii_lowercase(), &name) => return false,
                        Some(_) => {}
                        None => positive |= wildcard_match(&pattern.to_ascii_lowercase(), &name),
                    }
                }
                positive
            }
        }
    }
}

/// Glob match with `*` (any run) and `?` (one character), as OpenSSH's `match_pattern`.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two real ed25519 public keys and one ECDSA key (generated with ssh-keygen for these tests).
    const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBqGzomrvjGuUNq6HsOVfwfxjCHw3IrTY5YbHdHMI8Bd";
    const KEY_B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMjKnCqE0uRmgcDBHgb8sc+dCUnQiK0KyhILPcrcl8oj";
    const KEY_EC: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBH0j9IUODw+HzCdFXdG4IzK0fLYQ/Rgyt6wPAEPn4fO2liaGIFkccRs1d4qpuH7xDU3zBH4WfGTWdyzpZNx1Nsk=";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).expect("test key parses")
    }

    #[test]
    fn host_names_bracket_non_default_ports() {
        assert_eq!(host_name("example.com", 22), "example.com");
        assert_eq!(host_name("127.0.0.2", 2222), "[127.0.0.2]:2222");
        assert_eq!(host_name("::1", 2222), "[::1]:2222");
    }

    #[test]
    fn finds_keys_with_tabs_patterns_and_ports() {
        let text = format!(
            "# comment\n\n\
             other.example {KEY_B}\n\
             a.example,[127.0.0.2]:2222\t{KEY_A}  a comment with spaces\n\
             *.wild.example\t\t{KEY_A}\n\
             *.neg.example,!bad.neg.example {KEY_A}\n"
        );
        let kh = KnownHosts::parse(&text);
        assert!(kh.skipped_lines().is_empty(), "{:?}", kh.skipped_lines());
        let a = key(KEY_A);
        assert_eq!(kh.check("a.example", &a), HostKeyStatus::Known { line: 4 });
        assert_eq!(kh.check("A.Example", &a), HostKeyStatus::Known { line: 4 });
        assert_eq!(kh.check("[127.0.0.2]:2222", &a), HostKeyStatus::Known { line: 4 });
        assert_eq!(
            kh.check("127.0.0.2", &a),
            HostKeyStatus::Unknown,
            "port 22 is another name"
        );
        assert_eq!(kh.check("x.wild.example", &a), HostKeyStatus::Known { line: 5 });
        assert_eq!(kh.check("good.neg.example", &a), HostKeyStatus::Known { line: 6 });
        assert_eq!(kh.check("bad.neg.example", &a), HostKeyStatus::Unknown);
        assert_eq!(kh.check("other.example", &a), HostKeyStatus::Changed { line: 3 });
    }

    #[test]
    fn hashed_names_match_only_their_host() {
        let salt = [7u8; 20];
        let text = format!("{} {KEY_A}\n", hashed_name("[127.0.0.2]:2222", &salt));
        let kh = KnownHosts::parse(&text);
        assert_eq!(
            kh.check("[127.0.0.2]:2222", &key(KEY_A)),
            HostKeyStatus::Known { line: 1 }
        );
        assert_eq!(kh.check("[127.0.0.2]:2223", &key(KEY_A)), HostKeyStatus::Unknown);
        assert_eq!(
            kh.check("[127.0.0.2]:2222", &key(KEY_B)),
            HostKeyStatus::Changed { line: 1 }
        );
    }

    #[test]
    fn hashed_name_matches_ssh_keygen() {
        // `ssh-keygen -H` output for "example.com" with this salt (checked against OpenSSH 9.2).
        let salt = Base64::decode_vec("t/TXTCsHC3D8uWiosOMlA66Hii4=").expect("salt");
        assert_eq!(
            hashed_name("example.com", &salt),
            "|1|t/TXTCsHC3D8uWiosOMlA66Hii4=|IquGz6EYd32hYJ4JkpFrgt2IfUg="
        );
    }

    #[test]
    fn revoked_keys_are_refused_and_cert_authorities_ignored() {
        let text = format!("@revoked * {KEY_A}\nh {KEY_A}\n@cert-authority *.example {KEY_B}\n");
        let kh = KnownHosts::parse(&text);
        assert_eq!(kh.check("h", &key(KEY_A)), HostKeyStatus::Revoked { line: 1 });
        assert_eq!(kh.check("x.example", &key(KEY_B)), HostKeyStatus::Unknown);
    }

    #[test]
    fn a_key_of_another_type_counts_as_changed() {
        let kh = KnownHosts::parse(&format!("h {KEY_EC}\nh2 {KEY_A}\nh2 {KEY_EC}\n"));
        assert_eq!(kh.check("h", &key(KEY_A)), HostKeyStatus::Changed { line: 1 });
        assert_eq!(
            kh.check("h2", &key(KEY_B)),
            HostKeyStatus::Changed { line: 2 },
            "same type first"
        );
        assert_eq!(
            kh.algorithms_for("h2"),
            vec![key(KEY_A).algorithm(), key(KEY_EC).algorithm()]
        );
    }

    #[test]
    fn bad_lines_are_skipped_not_fatal() {
        let text = format!("h ssh-ed25519 !!notbase64\n@weird h {KEY_A}\nh\nh2 {KEY_A}\n|2|x|y {KEY_A}\n");
        let kh = KnownHosts::parse(&text);
        assert_eq!(kh.skipped_lines(), &[1, 2, 3, 5]);
        assert_eq!(kh.check("h2", &key(KEY_A)), HostKeyStatus::Known { line: 4 });
    }

    #[test]
    fn verify_learns_unknown_hosts_once_and_keeps_the_file_well_formed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/known_hosts");
        let a = key(KEY_A);
        assert_eq!(verify(&path, "[h]:2222", &a, false).ok(), Some(Verification::Unknown));
        assert!(!path.exists(), "strict mode must not create the file");
        assert_eq!(verify(&path, "[h]:2222", &a, true).ok(), Some(Verification::Learned));
        assert_eq!(
            verify(&path, "[h]:2222", &a, true).ok(),
            Some(Verification::Known { line: 1 })
        );
        // A file without a final newline gets one before the next entry.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"# no newline").expect("write");
        drop(f);
        assert_eq!(verify(&path, "other", &a, true).ok(), Some(Verification::Learned));
        let text = std::fs::read_to_string(&path).expect("read");
        let a_text = entry_line("x", &a);
        let a_blob = a_text.trim_start_matches("x ");
        assert_eq!(text, format!("[h]:2222 {a_blob}\n# no newline\nother {a_blob}\n"));
        assert_eq!(
            verify(&path, "other", &key(KEY_B), true).ok(),
            Some(Verification::Changed { line: 3 })
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "abbc"));
        assert!(wildcard_match("*.example", "x.y.example"));
        assert!(!wildcard_match("*.example", "example"));
        assert!(wildcard_match("[10.0.0.?]:22*", "[10.0.0.5]:2222"));
    }
}
