//! A session's journal: its events as wire frames, one JSON line each, seq 1, 2, 3, … without gaps.
//!
//! One writer at a time (whoever holds the session's supervisor lock) appends whole lines, one `write`
//! per line or per batch of lines ([`JournalWriter::queue`] then [`JournalWriter::flush`]); opening for
//! append repairs a torn last line and recovers the last seq. The journal
//! rotates once: past the size cap, `journal.jsonl` becomes `journal.1.jsonl` (replacing an older one)
//! and a new `journal.jsonl` starts. Readers ([`JournalCursor`]) copy lines through without
//! re-serialising them, follow a rotation, and skip every line whose seq they already passed.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use itervox_protocol::worker::SessionEvent;
use serde::Deserialize;

/// Default size at which the journal rotates.
pub const DEFAULT_CAP_BYTES: u64 = 64 * 1024 * 1024;
/// Queued lines are written once they reach this size, even before a flush.
const MAX_PENDING_BYTES: usize = 256 * 1024;

pub fn journal_path(dir: &Path) -> PathBuf {
    dir.join("journal.jsonl")
}

pub fn rotated_path(dir: &Path) -> PathBuf {
    dir.join("journal.1.jsonl")
}

/// Appends events to a session's journal.
#[derive(Debug)]
pub struct JournalWriter {
    dir: PathBuf,
    file: File,
    /// Bytes in the file (complete lines only).
    size: u64,
    /// The seq of the last line in the file.
    last_seq: u64,
    /// Queued lines not written yet, and the seq of the last of them.
    pending: Vec<u8>,
    pending_seq: u64,
    cap: u64,
}

impl JournalWriter {
    /// Opens (or creates) the journal for appending, cutting a torn last line and recovering the last
    /// seq (from the rotated file when the current one is empty).
    pub fn open(dir: &Path, cap: u64) -> std::io::Result<JournalWriter> {
        let path = journal_path(dir);
        let mut file = fs_err::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?
            .into_parts()
            .0;
        let len = file.metadata()?.len();
        let (complete, last_line) = last_complete_line(&mut file, len)?;
        if complete < len {
            tracing::warn!(path = %path.display(), cut = len - complete, "Cutting a torn last journal line.");
            file.set_len(complete)?;
            file.sync_all()?;
        }
        let mut last_seq = last_line.as_deref().and_then(seq_of).unwrap_or(0);
        if complete == 0 {
            last_seq = last_seq_in(&rotated_path(dir))?;
        }
        Ok(JournalWriter {
            dir: dir.to_path_buf(),
            file,
            size: complete,
            last_seq,
            pending: Vec::new(),
            pending_seq: last_seq,
            cap,
        })
    }

    /// The seq of the last event written to the file (queued events not included).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The seq the next event must carry (after the queued ones).
    pub fn next_seq(&self) -> u64 {
        self.pending_seq + 1
    }

    /// Appends one event, which must carry [`next_seq`](Self::next_seq), and writes it together with
    /// any queued ones.
    pub fn append(&mut self, event: &SessionEvent) -> std::io::Result<()> {
        self.queue(event)?;
        self.flush()
    }

    /// Queues one event, which must carry [`next_seq`](Self::next_seq), for the next
    /// [`flush`](Self::flush) (which writes all queued lines at once); a large queue is written at once.
    pub fn queue(&mut self, event: &SessionEvent) -> std::io::Result<()> {
        if event.seq() != self.next_seq() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "journal {}: event seq {} does not follow {}",
                    self.dir.display(),
                    event.seq(),
                    self.pending_seq
                ),
            ));
        }
        let start = self.pending.len();
        if let Err(e) = serde_json::to_writer(&mut self.pending, event) {
            self.pending.truncate(start);
            return Err(std::io::Error::other(e));
        }
        self.pending.push(b'\n');
        let line_len = (self.pending.len() - start) as u64;
        if self.size + start as u64 > 0 && self.size + start as u64 + line_len > self.cap {
            // The rotation happens before this line: write what came before it to the old file.
            let line = self.pending.split_off(start);
            let seq_before = self.pending_seq;
            self.flush()?;
            self.rotate()?;
            debug_assert_eq!(self.last_seq, seq_before);
            self.pending = line;
        }
        self.pending_seq = event.seq();
        if self.pending.len() >= MAX_PENDING_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the queued lines with one `write`. On failure they are dropped (the file keeps no torn
    /// line) and the next event takes the seq of the first dropped one, so seqs stay without gaps.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&self.pending) {
            // Never leave a torn line for the next append to glue onto.
            let _ = self.file.set_len(self.size);
            self.pending.clear();
            self.pending_seq = self.last_seq;
            return Err(e);
        }
        self.size += self.pending.len() as u64;
        self.last_seq = self.pending_seq;
        self.pending.clear();
        Ok(())
    }

    /// Writes the queued lines and makes everything appended so far durable.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.flush()?;
        self.file.sync_data()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.sync_all()?;
        fs_err::rename(journal_path(&self.dir), rotated_path(&self.dir))?;
        self.file = fs_err::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(journal_path(&self.dir))?
            .into_parts()
            .0;
        self.size = 0;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// The `seq` of a journal line, without decoding the rest.
pub fn seq_of(line: &[u8]) -> Option<u64> {
    seq_of_prefix(line).or_else(|| serde_json::from_slice::<SeqOnly>(line).ok().map(|s| s.seq))
}

/// The seq of a line in the form this worker writes every event (`{"type":"…","sessionId":"…","seq":N,`),
/// read from its first bytes; None for any other form (which the JSON parser then reads). A replay
/// reads every line's seq, and parsing whole lines for it cost more than the rest of the replay.
fn seq_of_prefix(line: &[u8]) -> Option<u64> {
    /// The rest after a string's closing quote, for a string without escapes.
    fn after_string(rest: &[u8]) -> Option<&[u8]> {
        let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
        (rest[end] == b'"').then(|| &rest[end..])
    }
    let rest = after_string(line.strip_prefix(br#"{"type":""#)?)?;
    let rest = after_string(rest.strip_prefix(br#"","sessionId":""#)?)?;
    let rest = rest.strip_prefix(br#"","seq":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if !matches!(rest.get(digits), Some(b',' | b'}')) {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// The last seq in the journal of `dir` (0 when empty). Read-only.
pub fn last_seq(dir: &Path) -> std::io::Result<u64> {
    match last_seq_in(&journal_path(dir))? {
        0 => last_seq_in(&rotated_path(dir)),
        n => Ok(n),
    }
}

fn last_seq_in(path: &Path) -> std::io::Result<u64> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let (_, line) = last_complete_line(&mut file, len)?;
    Ok(line.as_deref().and_then(seq_of).unwrap_or(0))
}

/// Scans backwards from `len`: the length up to and including the last `\n`, and the last complete
/// line (without its `\n`).
fn last_complete_line(file: &mut File, len: u64) -> std::io::Result<(u64, Option<Vec<u8>>)> {
    let mut pos = len;
    let mut tail: Vec<u8> = Vec::new();
    let mut chunk = 64 * 1024u64;
    loop {
        if let Some(last_nl) = tail.iter().rposition(|&b| b == b'\n') {
            let complete = pos + last_nl as u64 + 1;
            if let Some(prev) = tail[..last_nl].iter().rposition(|&b| b == b'\n') {
                return Ok((complete, Some(tail[prev + 1..last_nl].to_vec())));
            }
            if pos == 0 {
                return Ok((complete, Some(tail[..last_nl].to_vec())));
            }
        } else if pos == 0 {
            return Ok((0, None));
        }
        let n = chunk.min(pos);
        pos -= n;
        let mut buf = vec![0u8; n as usize];
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf)?;
        buf.extend_from_slice(&tail);
        tail = buf;
        // Grow the step so a very long line costs linear time, not quadratic.
        chunk = chunk.saturating_mul(2);
    }
}

/// The `agentSessionRef`s of the `turn` events in a session's journal (rotated part first), in order.
pub fn turn_refs(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for path in [rotated_path(dir), journal_path(dir)] {
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in text.split(|&b| b == b'\n') {
            // Cheap filter first: only turn events are decoded.
            if !line.starts_with(br#"{"type":"turn""#) {
                continue;
            }
            if let Ok(SessionEvent::Turn(t)) = serde_json::from_slice::<SessionEvent>(line)
                && let Some(r) = t.agent_session_ref
            {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// Reads a journal from a given seq on, following appends and the rotation.
#[derive(Debug)]
pub struct JournalCursor {
    dir: PathBuf,
    next_seq: u64,
    /// A rotated file still being read (before `current`).
    rotated: Option<OpenJournal>,
    current: Option<OpenJournal>,
    started: bool,
    /// The read buffer, kept between reads (a follower reads after every append).
    chunk: Vec<u8>,
}

#[derive(Debug)]
struct OpenJournal {
    file: File,
    ino: u64,
    offset: u64,
    partial: Vec<u8>,
}

const READ_CHUNK: usize = 256 * 1024;

impl JournalCursor {
    /// A cursor that yields events with `seq >= from_seq`.
    pub fn new(dir: &Path, from_seq: u64) -> JournalCursor {
        JournalCursor {
            dir: dir.to_path_buf(),
            next_seq: from_seq.max(1),
            rotated: None,
            current: None,
            started: false,
            chunk: Vec::new(),
        }
    }

    /// The seq of the next event this cursor will yield.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends the complete journal lines available now (each with its `\n`) to `out`, stopping once
    /// `out` holds at least `budget` bytes. Returns true when it stopped for the budget (more is
    /// available at once).
    pub fn read_available(&mut self, out: &mut Vec<u8>, budget: usize) -> std::io::Result<bool> {
        if self.chunk.is_empty() {
            self.chunk = vec![0u8; READ_CHUNK];
        }
        let chunk = &mut self.chunk;
        if self.current.is_none() {
            let Some(open) = open_journal(&journal_path(&self.dir))? else {
                return Ok(false);
            };
            if !self.started {
                // Replay what rotated away first, unless it is the file just opened.
                if let Some(old) = open_journal(&rotated_path(&self.dir))?
                    && old.ino != open.ino
                {
                    self.rotated = Some(old);
                }
                self.started = true;
            }
            self.current = Some(open);
        }
        loop {
            // A rotated file is read to its end (within the budget, like any other) before the next.
            if let Some(old) = self.rotated.as_mut() {
                if read_lines(old, &mut self.next_seq, out, budget, chunk)? {
                    return Ok(true);
                }
                self.rotated = None;
            }
            let Some(cur) = self.current.as_mut() else {
                return Ok(false);
            };
            if read_lines(cur, &mut self.next_seq, out, budget, chunk)? {
                return Ok(true);
            }
            // At the end of the open file: did the writer rotate?
            let now_ino = match std::fs::metadata(journal_path(&self.dir)) {
                Ok(m) => Some(m.ino()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            if now_ino == Some(cur.ino) || now_ino.is_none() {
                return Ok(false);
            }
            // Rotated: the old file is complete now; drain it, then switch to the new one.
            self.rotated = self.current.take();
            self.current = open_journal(&journal_path(&self.dir))?;
        }
    }
}

fn open_journal(path: &Path) -> std::io::Result<Option<OpenJournal>> {
    match File::open(path) {
        Ok(file) => {
            let ino = file.metadata()?.ino();
            Ok(Some(OpenJournal {
                file,
                ino,
                offset: 0,
                partial: Vec::new(),
            }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads complete lines from `j` into `out` (filtering by seq) until EOF or the budget. True when the
/// budget stopped it.
fn read_lines(
    j: &mut OpenJournal,
    next_seq: &mut u64,
    out: &mut Vec<u8>,
    budget: usize,
    chunk: &mut [u8],
) -> std::io::Result<bool> {
    loop {
        if out.len() >= budget {
            return Ok(true);
        }
        let n = j.file.read_at(chunk, j.offset)?;
        if n == 0 {
            return Ok(false);
        }
        j.offset += n as u64;
        j.partial.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(i) = memchr::memchr(b'\n', &j.partial[start..]) {
            let line = &j.partial[start..start + i];
            match seq_of(line) {
                Some(seq) if seq >= *next_seq => {
                    out.extend_from_slice(line);
                    out.push(b'\n');
                    *next_seq = seq + 1;
                }
                Some(_) => {}
                None => tracing::warn!(bytes = line.len(), "Skipping an unreadable journal line."),
            }
            start += i + 1;
        }
        j.partial.drain(..start);
    }
}

#[cfg(test)]
mod tests;
