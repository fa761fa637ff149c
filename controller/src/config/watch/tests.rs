//! Tests for config/watch.rs: a valid edit is reloaded, a broken one reported invalid and reloaded
//! once fixed, the controller's own writes skipped, cancellation ends the task; plus the poll
//! decisions (debounce, own edits that carried someone's change) step by step.

use std::time::Duration;

use tokio::time::timeout;

use super::*;
use crate::config::edit::Edit;
use crate::config::load_workflow;

const PATIENCE: Duration = Duration::from_secs(20);
const FAST: Duration = Duration::from_millis(20);

fn text(max_turns: u32) -> String {
    format!("---\n# settings\nagent:\n  max_turns: {max_turns}   # per run\n---\nWork on {{{{ issue.title }}}}\n")
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    cancel: CancellationToken,
    handle: WatchHandle,
    events: mpsc::Receiver<WatchEvent>,
}

fn start(initial: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("WORKFLOW.md");
    std::fs::write(&path, initial).unwrap();
    let workflow = load_workflow(&path).unwrap();
    let cancel = CancellationToken::new();
    let (handle, events) = spawn_watcher(&workflow, FAST, cancel.clone());
    Fixture {
        _dir: dir,
        path,
        cancel,
        handle,
        events,
    }
}

impl Fixture {
    async fn next(&mut self) -> WatchEvent {
        timeout(PATIENCE, self.events.recv())
            .await
            .expect("no watch event within 20 s")
            .expect("the watcher stopped")
    }

    /// Waits until the watcher has taken in the content with `hash`.
    async fn until_seen(&self, hash: u64) {
        timeout(PATIENCE, async {
            while self.handle.last_seen() != hash {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the watcher did not take in the write within 20 s");
    }
}

/// Replaces the file as an editor's atomic save does (the debounce of half-written files is tested
/// step by step below).
fn save(path: &Path, content: &str) {
    let tmp = path.with_extension("md.saving");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn max_turns(event: WatchEvent) -> u32 {
    match event {
        WatchEvent::Reloaded(wf) => wf.config.agent.max_turns,
        WatchEvent::Invalid(e) => panic!("expected a reload, got invalid: {e}"),
    }
}

#[tokio::test]
async fn a_valid_edit_is_reloaded() {
    let mut f = start(&text(3));
    save(&f.path, &text(4));
    assert_eq!(max_turns(f.next().await), 4);
    assert_eq!(f.handle.last_seen(), crate::config::content_hash(text(4).as_bytes()));
    f.cancel.cancel();
}

#[tokio::test]
async fn a_broken_edit_is_invalid_and_reloaded_once_fixed() {
    let mut f = start(&text(3));
    save(&f.path, "---\nagent:\n  max_turns: [3\n---\n");
    match f.next().await {
        WatchEvent::Invalid(ConfigError::Yaml { path, location, .. }) => {
            assert_eq!(path, f.path);
            assert_eq!(location.map(|l| l.line), Some(4));
        }
        other => panic!("expected an invalid YAML event, got {other:?}"),
    }
    save(&f.path, &text(5));
    assert_eq!(max_turns(f.next().await), 5);
    // A bad value is invalid too; removing the file as well.
    save(&f.path, &text(3).replace("max_turns: 3", "max_turns: ten"));
    assert!(matches!(
        f.next().await,
        WatchEvent::Invalid(ConfigError::InvalidValue { .. })
    ));
    std::fs::remove_file(&f.path).unwrap();
    assert!(matches!(
        f.next().await,
        WatchEvent::Invalid(ConfigError::Missing { .. })
    ));
    f.cancel.cancel();
}

#[tokio::test]
async fn the_controllers_own_writes_are_not_reported() {
    let mut f = start(&text(3));
    // Through the handle: the hash is noted before the file is replaced.
    let handle = f.handle.clone();
    let outcome = tokio::task::spawn_blocking(move || handle.apply_edits(&[Edit::set(&["agent", "max_turns"], 7)]))
        .await
        .unwrap()
        .unwrap();
    f.until_seen(outcome.content_hash).await;
    // Noted by hash, written by other means.
    let own = text(8);
    f.handle.note_own_write(crate::config::content_hash(own.as_bytes()));
    save(&f.path, &own);
    f.until_seen(crate::config::content_hash(own.as_bytes())).await;
    // The first event is the person's edit that follows, not either of ours.
    save(&f.path, &text(9));
    assert_eq!(max_turns(f.next().await), 9);
    f.cancel.cancel();
}

#[tokio::test]
async fn cancelling_stops_the_watcher() {
    let mut f = start(&text(3));
    f.cancel.cancel();
    let end = timeout(PATIENCE, f.events.recv())
        .await
        .expect("the watcher did not stop within 20 s");
    assert!(end.is_none());
}

fn poller(path: &Path, last_seen: u64) -> Poller {
    Poller {
        path: path.to_path_buf(),
        last_seen,
        pending_invalid: None,
        own_writes: Arc::default(),
        shared_last_seen: Arc::default(),
    }
}

fn read(t: &str) -> std::io::Result<Vec<u8>> {
    Ok(t.as_bytes().to_vec())
}

#[test]
fn a_broken_content_is_reported_once_it_stays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("WORKFLOW.md");
    let mut p = poller(&path, content_hash(text(3).as_bytes()));
    let broken = "---\nagent: [\n";
    assert_eq!(p.observe(read(broken)), None, "first sight: maybe a write in progress");
    assert!(matches!(p.observe(read(broken)), Some(WatchEvent::Invalid(_))));
    assert_eq!(p.observe(read(broken)), None, "reported once");
    // A half-written file followed by the complete one never shows as invalid.
    assert_eq!(p.observe(read("---\nage")), None);
    assert!(matches!(p.observe(read(&text(4))), Some(WatchEvent::Reloaded(_))));
    assert_eq!(p.observe(read(&text(4))), None);
    let missing = || Err(std::io::Error::from(std::io::ErrorKind::NotFound));
    assert_eq!(p.observe(missing()), None);
    assert!(matches!(
        p.observe(missing()),
        Some(WatchEvent::Invalid(ConfigError::Missing { .. }))
    ));
}

#[test]
fn an_own_edit_that_carried_someone_elses_change_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("WORKFLOW.md");
    let seen = content_hash(text(3).as_bytes());
    let mut p = poller(&path, seen);
    let handle = WatchHandle {
        path: path.clone(),
        own_writes: p.own_writes.clone(),
        last_seen: Arc::default(),
    };
    // Our edit was based on the content the watcher knows: skipped.
    handle.note_own_edit(seen, content_hash(text(4).as_bytes()));
    assert_eq!(p.observe(read(&text(4))), None);
    assert_eq!(p.last_seen, content_hash(text(4).as_bytes()));
    // Someone changed the file (unseen), then our edit rewrote it on top: reported.
    let hand = content_hash(text(5).as_bytes());
    handle.note_own_edit(hand, content_hash(text(6).as_bytes()));
    assert_eq!(p.observe(read(&text(6))).map(max_turns), Some(6));
}
