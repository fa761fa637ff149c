//! Comment-preserving, atomic edits of WORKFLOW.md's front matter, as the API makes them when it
//! persists a setting.
//!
//! An edit names a key path and a new value (or a removal). [`apply_edits`] takes the file's locks
//! (an in-process mutex per path and an exclusive `flock` on `.WORKFLOW.md.lock` beside it, for other
//! processes), re-reads the file, refuses with [`EditError::Conflict`] when what is on disk does not
//! load (a person's broken edit to fix first), changes only the lines the edited keys own (see
//! `edit/splice.rs`), checks that the new text reads back as the old values with exactly the edits
//! applied and still loads, then replaces the file atomically (temp file in the same folder, fsync,
//! rename, fsync of the folder; the file mode is kept). Comments, key order, unknown keys, anchors
//! elsewhere and the prompt body stay byte-for-byte.
//!
//! The functions block (file locks and fsync); call them from `spawn_blocking` in async code.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use yaml_serde::{Mapping, Value};

use super::load::reader::{dotted, scalar_text};
use super::load::{BodyCheck, ConfigError, absolute, parse_workflow, parse_workflow_checking};
use super::{Workflow, content_hash, front_matter};

mod emit;
mod splice;

/// One change to the front matter.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Set the key at `path` to `value`, creating missing parent maps. A map replaces a map entry by
    /// entry (entries it lacks are removed, equal ones are left as written).
    Set { path: Vec<String>, value: Value },
    /// Remove the key at `path` (nothing happens when it is absent). A map left empty becomes `{}`.
    Remove { path: Vec<String> },
}

impl Edit {
    /// `Edit::Set` from a key path like `&["agent", "max_concurrent_agents"]`.
    pub fn set(path: &[&str], value: impl Into<Value>) -> Edit {
        Edit::Set {
            path: path.iter().map(|s| s.to_string()).collect(),
            value: value.into(),
        }
    }

    /// `Edit::Remove` from a key path.
    pub fn remove(path: &[&str]) -> Edit {
        Edit::Remove {
            path: path.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The key path the edit owns.
    pub fn path(&self) -> &[String] {
        match self {
            Edit::Set { path, .. } | Edit::Remove { path } => path,
        }
    }
}

/// Builds a YAML list of strings, for `Edit::set`.
pub fn string_list<S: AsRef<str>>(items: &[S]) -> Value {
    Value::Sequence(items.iter().map(|s| Value::String(s.as_ref().to_string())).collect())
}

/// Builds a YAML map from `(key, value)` pairs, in order, for `Edit::set`.
pub fn map<K: Into<String>, V: Into<Value>>(entries: impl IntoIterator<Item = (K, V)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in entries {
        m.insert(Value::String(k.into()), v.into());
    }
    Value::Mapping(m)
}

/// What an applied set of edits did.
#[derive(Debug, Clone, PartialEq)]
pub struct EditOutcome {
    /// Hash of the file as it was read under the lock (it may include a person's edits the watcher
    /// has not seen yet).
    pub previous_hash: u64,
    /// Hash of the file now; give it to the watcher so it does not report the write as a reload.
    pub content_hash: u64,
    /// False when the file already said all of it (nothing was written).
    pub changed: bool,
    /// The file as it now loads.
    pub workflow: Workflow,
}

/// Why an edit was not written. The file is unchanged in every case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditError {
    /// The file on disk does not load (someone's edit in progress, or it was removed); the API answers
    /// 409 and the operator fixes the file first.
    #[error("WORKFLOW.md has an invalid edit to fix first, so the setting was not saved: {error}")]
    Conflict { error: ConfigError },
    /// The file would no longer load with this change (e.g. a value out of range).
    #[error("the change would make the workflow invalid, so it was not saved: {error}")]
    Invalid { error: ConfigError },
    /// The key sits where the editor cannot change it safely (inside a list, an alias, an anchored map).
    #[error("{}: cannot change {key}: {reason}", path.display())]
    Unsupported { path: PathBuf, key: String, reason: String },
    /// The edited text did not read back as intended; nothing was written.
    #[error("{}: refused to write: the edited front matter would not read back as intended ({detail})", path.display())]
    Verification { path: PathBuf, detail: String },
    /// An edit with an empty key path.
    #[error("an edit needs a key path")]
    EmptyPath,
    /// Reading, locking or writing failed.
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
}

/// Applies `edits` in order, in one atomic write, resolving `$VAR` from the process environment.
pub fn apply_edits(path: &Path, edits: &[Edit]) -> Result<EditOutcome, EditError> {
    apply_edits_with(path, edits, &|name| std::env::var(name).ok(), &mut |_, _| {})
}

/// [`apply_edits`] with the environment given, and `before_commit(previous_hash, new_hash)` called
/// under the lock just before the new file replaces the old one (the watcher notes its own write
/// there, so it cannot observe the file before it knows the hash).
pub fn apply_edits_with(
    path: &Path,
    edits: &[Edit],
    env: &dyn Fn(&str) -> Option<String>,
    before_commit: &mut dyn FnMut(u64, u64),
) -> Result<EditOutcome, EditError> {
    if edits.iter().any(|e| e.path().is_empty()) {
        return Err(EditError::EmptyPath);
    }
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| absolute(path));
    let process_lock = process_lock(&target);
    let _in_process = process_lock.lock().unwrap_or_else(PoisonError::into_inner);
    let _flock = lock_file(&target)?;
    // A person's editor takes no lock: when the file changes between our read and our replace, start
    // over from what they saved instead of overwriting it with the stale copy.
    for _ in 0..MAX_ATTEMPTS {
        if let Some(outcome) = attempt(&target, edits, env, before_commit)? {
            return Ok(outcome);
        }
    }
    Err(EditError::Io {
        path: target,
        message: format!("the file kept changing while it was being edited ({MAX_ATTEMPTS} tries)"),
    })
}

/// How often an edit starts over because the file changed under it.
const MAX_ATTEMPTS: usize = 10;

/// One read-edit-replace under the locks; `None` when the file changed before it could be replaced
/// (nothing was written).
fn attempt(
    target: &Path,
    edits: &[Edit],
    env: &dyn Fn(&str) -> Option<String>,
    before_commit: &mut dyn FnMut(u64, u64),
) -> Result<Option<EditOutcome>, EditError> {
    let target = target.to_path_buf();
    let text = match std::fs::read(&target) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| EditError::Conflict {
            error: ConfigError::Unreadable {
                path: target.clone(),
                message: "not UTF-8 text".into(),
            },
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(EditError::Conflict {
                error: ConfigError::Missing { path: target.clone() },
            });
        }
        Err(e) => return Err(io_error(&target, "cannot read", &e)),
    };
    let previous_hash = content_hash(text.as_bytes());
    let current = parse_workflow(&target, &text, env).map_err(|error| EditError::Conflict { error })?;
    let fm = front_matter::split(&text).map_err(|_| EditError::Verification {
        path: target.clone(),
        detail: "the front matter could not be found again".into(),
    })?;
    let yaml = &text[fm.yaml.clone()];

    let mut new_yaml = yaml.to_string();
    let mut expected = parse_raw(yaml).map_err(|detail| EditError::Verification {
        path: target.clone(),
        detail,
    })?;
    for edit in edits {
        let unsupported = |e: splice::SpliceError| EditError::Unsupported {
            path: target.clone(),
            key: e.key,
            reason: e.reason,
        };
        splice::apply_text(&mut new_yaml, edit).map_err(unsupported)?;
        splice::apply_value(&mut expected, edit).map_err(unsupported)?;
    }
    if new_yaml == yaml {
        return Ok(Some(EditOutcome {
            previous_hash,
            content_hash: previous_hash,
            changed: false,
            workflow: current,
        }));
    }

    let got = parse_raw(&new_yaml).map_err(|detail| EditError::Verification {
        path: target.clone(),
        detail,
    })?;
    if let Some(key) = first_difference(&expected, &got, &mut Vec::new()) {
        return Err(EditError::Verification {
            path: target.clone(),
            detail: format!("`{key}` would not hold the intended value"),
        });
    }
    let new_text = format!("{}{}{}", &text[..fm.yaml.start], new_yaml, &text[fm.yaml.end..]);
    match front_matter::split(&new_text) {
        Ok(new_fm) if new_text[new_fm.body_start..] == text[fm.body_start..] => {}
        _ => {
            return Err(EditError::Verification {
                path: target.clone(),
                detail: "the prompt body would change".into(),
            });
        }
    }
    let workflow = parse_workflow_checking(&target, &new_text, env, BodyCheck::KnownGood)
        .map_err(|error| EditError::Invalid { error })?;
    let new_hash = content_hash(new_text.as_bytes());
    before_commit(previous_hash, new_hash);
    if !write_atomically(&target, new_text.as_bytes(), text.as_bytes())? {
        return Ok(None);
    }
    Ok(Some(EditOutcome {
        previous_hash,
        content_hash: new_hash,
        changed: true,
        workflow,
    }))
}

/// The front matter as a raw value tree (aliases resolved, merge keys not applied).
fn parse_raw(yaml: &str) -> Result<Value, String> {
    if yaml.trim().is_empty() {
        return Ok(Value::Mapping(Mapping::new()));
    }
    match yaml_serde::from_str::<Value>(yaml) {
        Ok(Value::Null) => Ok(Value::Mapping(Mapping::new())),
        Ok(v) => Ok(v),
        Err(e) => Err(format!("it does not parse: {e}")),
    }
}

/// The dotted key of the first place where `a` and `b` differ.
fn first_difference(a: &Value, b: &Value, path: &mut Vec<String>) -> Option<String> {
    match (a, b) {
        (Value::Mapping(x), Value::Mapping(y)) => {
            for (k, va) in x {
                let key = scalar_text(k).unwrap_or_else(|| format!("{k:?}"));
                path.push(key);
                let found = match y.get(k) {
                    Some(vb) => first_difference(va, vb, path),
                    None => Some(dotted(path)),
                };
                path.pop();
                if found.is_some() {
                    return found;
                }
            }
            y.iter().find(|(k, _)| !x.contains_key(*k)).map(|(k, _)| {
                let mut p = path.clone();
                p.push(scalar_text(k).unwrap_or_else(|| format!("{k:?}")));
                dotted(&p)
            })
        }
        _ if a == b => None,
        _ if path.is_empty() => Some("(the whole front matter)".into()),
        _ => Some(dotted(path)),
    }
}

fn io_error(path: &Path, what: &str, e: &std::io::Error) -> EditError {
    EditError::Io {
        path: path.to_path_buf(),
        message: format!("{what}: {e}"),
    }
}

/// The in-process lock for one workflow file.
fn process_lock(path: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    locks.entry(path.to_path_buf()).or_default().clone()
}

/// The lock file beside `target`: `.WORKFLOW.md.lock` for `WORKFLOW.md`.
pub fn lock_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.lock"))
}

/// Takes the exclusive `flock` that serialises writers across processes; released on drop.
fn lock_file(target: &Path) -> Result<Flock<File>, EditError> {
    let path = lock_path(target);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| io_error(&path, "cannot open the lock file", &e))?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(lock) => return Ok(lock),
            Err((f, Errno::EINTR)) => file = f,
            Err((_, errno)) => {
                return Err(EditError::Io {
                    path,
                    message: format!("cannot lock: {errno}"),
                });
            }
        }
    }
}

/// Replaces `target` with `bytes`: a temp file in the same folder with the old mode, fsync, rename,
/// fsync of the folder. A crash leaves the old file or the new one, never a mix. Returns false (and
/// writes nothing) when `target` no longer holds `read` just before the rename.
fn write_atomically(target: &Path, bytes: &[u8], read: &[u8]) -> Result<bool, EditError> {
    let dir = target.parent().unwrap_or(Path::new("/"));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let permissions = std::fs::metadata(target)
        .map_err(|e| io_error(target, "cannot read the file's mode", &e))?
        .permissions();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| io_error(dir, "cannot create a temp file", &e))?;
    tmp.write_all(bytes)
        .map_err(|e| io_error(tmp.path(), "cannot write", &e))?;
    tmp.as_file()
        .set_permissions(permissions)
        .map_err(|e| io_error(tmp.path(), "cannot set the mode", &e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| io_error(tmp.path(), "cannot fsync", &e))?;
    if std::fs::read(target).map_err(|e| io_error(target, "cannot read", &e))? != read {
        return Ok(false);
    }
    tmp.persist(target)
        .map_err(|e| io_error(target, "cannot replace the file", &e.error))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, "cannot fsync the folder", &e))?;
    Ok(true)
}

#[cfg(test)]
mod tests;
