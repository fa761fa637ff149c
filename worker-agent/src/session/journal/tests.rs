//! Journal append, replay from a seq, torn-line repair, rotation and following across it.

use std::io::Write;

use itervox_protocol::worker::LogEvent;
use itervox_protocol::{IssueLogEntry, LogEventKind, LogLevel};

use super::*;

fn event(seq: u64) -> SessionEvent {
    let mut entry = IssueLogEntry::new(
        LogLevel::Info,
        LogEventKind::Text,
        format!("message number {seq} {}", "x".repeat(40)),
        "2026-12-04T10:00:00Z".to_string(),
    );
    entry.session_id = Some("s-1".to_string());
    entry.seq = Some(seq);
    SessionEvent::Log(LogEvent {
        session_id: "s-1".to_string(),
        seq,
        entry,
    })
}

fn seqs(bytes: &[u8]) -> Vec<u64> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let ev: SessionEvent = serde_json::from_slice(l).expect("every line is a whole event");
            ev.seq()
        })
        .collect()
}

fn read_all(cursor: &mut JournalCursor) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        let mut batch = Vec::new();
        let more = cursor.read_available(&mut batch, 1024).unwrap();
        all.extend(batch);
        if !more {
            return all;
        }
    }
}

#[test]
fn append_then_replay_from_any_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = JournalWriter::open(tmp.path(), DEFAULT_CAP_BYTES).unwrap();
    assert_eq!(w.last_seq(), 0);
    for seq in 1..=100 {
        w.append(&event(seq)).unwrap();
    }
    w.sync().unwrap();
    assert_eq!(last_seq(tmp.path()).unwrap(), 100);

    let all = read_all(&mut JournalCursor::new(tmp.path(), 1));
    assert_eq!(seqs(&all), (1..=100).collect::<Vec<_>>());
    // Lines pass through byte for byte.
    assert_eq!(all, std::fs::read(journal_path(tmp.path())).unwrap());

    let from = read_all(&mut JournalCursor::new(tmp.path(), 60));
    assert_eq!(seqs(&from), (60..=100).collect::<Vec<_>>());
    assert!(read_all(&mut JournalCursor::new(tmp.path(), 101)).is_empty());
}

#[test]
fn out_of_order_appends_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = JournalWriter::open(tmp.path(), DEFAULT_CAP_BYTES).unwrap();
    w.append(&event(1)).unwrap();
    let err = w.append(&event(3)).unwrap_err();
    assert!(err.to_string().contains("does not follow 1"), "{err}");
    assert!(w.append(&event(1)).is_err());
    w.append(&event(2)).unwrap();
}

#[test]
fn a_torn_last_line_is_cut_on_reopen_and_never_yielded() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut w = JournalWriter::open(tmp.path(), DEFAULT_CAP_BYTES).unwrap();
        for seq in 1..=3 {
            w.append(&event(seq)).unwrap();
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(journal_path(tmp.path()))
        .unwrap();
    f.write_all(br#"{"type":"log","sessionId":"s-1","seq":4,"ent"#).unwrap();

    let mut cursor = JournalCursor::new(tmp.path(), 1);
    assert_eq!(seqs(&read_all(&mut cursor)), vec![1, 2, 3], "a partial line waits");

    let mut w = JournalWriter::open(tmp.path(), DEFAULT_CAP_BYTES).unwrap();
    assert_eq!(w.last_seq(), 3);
    w.append(&event(4)).unwrap();
    assert_eq!(
        seqs(&read_all(&mut JournalCursor::new(tmp.path(), 1))),
        vec![1, 2, 3, 4]
    );
}

#[test]
fn a_cursor_follows_appends_and_the_rotation_without_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let line_len = serde_json::to_vec(&event(10)).unwrap().len() as u64 + 1;
    let cap = line_len * 10;
    let mut w = JournalWriter::open(tmp.path(), cap).unwrap();
    let mut cursor = JournalCursor::new(tmp.path(), 1);
    let mut got = Vec::new();
    for seq in 1..=35 {
        w.append(&event(seq)).unwrap();
        if seq % 4 == 0 {
            got.extend(seqs(&read_all(&mut cursor)));
        }
    }
    got.extend(seqs(&read_all(&mut cursor)));
    assert_eq!(got, (1..=35).collect::<Vec<_>>());
    assert!(rotated_path(tmp.path()).exists());

    // A new reader gets what the rotation kept: the rotated file, then the current one, in order.
    let fresh = seqs(&read_all(&mut JournalCursor::new(tmp.path(), 1)));
    assert_eq!(*fresh.last().unwrap(), 35);
    let first = fresh[0];
    assert!(first > 1, "older rotations are dropped");
    assert_eq!(fresh, (first..=35).collect::<Vec<_>>());

    // Reopening right after a rotation (empty current file) recovers the seq from the rotated one.
    drop(w);
    std::fs::rename(journal_path(tmp.path()), rotated_path(tmp.path())).unwrap();
    let w = JournalWriter::open(tmp.path(), cap).unwrap();
    assert_eq!(w.last_seq(), 35);
    assert_eq!(last_seq(tmp.path()).unwrap(), 35);
}

#[test]
fn a_missing_journal_reads_as_empty_until_it_appears() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cursor = JournalCursor::new(tmp.path(), 1);
    assert!(read_all(&mut cursor).is_empty());
    assert_eq!(last_seq(tmp.path()).unwrap(), 0);
    let mut w = JournalWriter::open(tmp.path(), DEFAULT_CAP_BYTES).unwrap();
    w.append(&event(1)).unwrap();
    assert_eq!(seqs(&read_all(&mut cursor)), vec![1]);
}

#[test]
fn very_long_lines_are_found_by_the_backward_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = JournalWriter::open(tmp.path(), DEFAULT_CAP_BYTES).unwrap();
    w.append(&event(1)).unwrap();
    let mut big = event(2);
    if let SessionEvent::Log(l) = &mut big {
        l.entry.message = "y".repeat(3 * 1024 * 1024);
    }
    w.append(&big).unwrap();
    drop(w);
    let w = JournalWriter::open(tmp.path(), DEFAULT_CAP_BYTES).unwrap();
    assert_eq!(w.last_seq(), 2);
}

#[test]
fn queued_events_are_written_together_on_flush_and_across_the_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let line_len = serde_json::to_vec(&event(10)).unwrap().len() as u64 + 1;
    let cap = line_len * 10;
    let mut w = JournalWriter::open(tmp.path(), cap).unwrap();
    let mut cursor = JournalCursor::new(tmp.path(), 1);
    for seq in 1..=5 {
        w.queue(&event(seq)).unwrap();
    }
    assert_eq!(w.next_seq(), 6, "queued events take their seqs at once");
    assert_eq!(w.last_seq(), 0, "but they are not in the file yet");
    assert!(read_all(&mut cursor).is_empty());
    assert!(w.queue(&event(5)).is_err(), "a queued seq cannot be reused");
    w.flush().unwrap();
    assert_eq!(w.last_seq(), 5);
    assert_eq!(last_seq(tmp.path()).unwrap(), 5);
    assert_eq!(seqs(&read_all(&mut cursor)), vec![1, 2, 3, 4, 5]);

    // Batches that cross the cap rotate at the same line as one append at a time would.
    for seq in 6..=15 {
        w.queue(&event(seq)).unwrap();
    }
    w.flush().unwrap();
    assert_eq!(seqs(&read_all(&mut cursor)), (6..=15).collect::<Vec<_>>());
    for seq in 16..=23 {
        w.queue(&event(seq)).unwrap();
    }
    w.append(&event(24)).unwrap();
    assert_eq!(w.last_seq(), 24);
    assert_eq!(seqs(&read_all(&mut cursor)), (16..=24).collect::<Vec<_>>());
    let rotated = seqs(&std::fs::read(rotated_path(tmp.path())).unwrap());
    let current = seqs(&std::fs::read(journal_path(tmp.path())).unwrap());
    assert_eq!(rotated, (11..=20).collect::<Vec<_>>());
    assert_eq!(current, (21..=24).collect::<Vec<_>>());
    w.sync().unwrap();
}

#[test]
fn a_lines_seq_is_read_from_its_first_bytes_and_agrees_with_the_whole_line() {
    let others = [
        serde_json::json!({"type":"input_required","sessionId":"s-1","seq":5,"context":"Which \"DB\"?"}),
        serde_json::json!({"type":"session_exit","sessionId":"s-1","seq":6,"turn":1,"status":"succeeded"}),
    ];
    let mut lines: Vec<Vec<u8>> = others
        .iter()
        .map(|v| serde_json::to_vec(&serde_json::from_value::<SessionEvent>(v.clone()).unwrap()).unwrap())
        .collect();
    lines.push(serde_json::to_vec(&event(18_446_744_073_709_551_615)).unwrap());
    lines.push(serde_json::to_vec(&event(7)).unwrap());
    for line in &lines {
        let whole: SessionEvent = serde_json::from_slice(line).unwrap();
        assert_eq!(
            seq_of_prefix(line),
            Some(whole.seq()),
            "{}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(seq_of(line), Some(whole.seq()));
    }
    // Other forms of a line are read whole: an escape in the session id, spaces, another field order.
    for other in [
        br#"{"type":"log","sessionId":"s\u002d1","seq":9,"entry":{}}"#.as_slice(),
        br#"{"type": "log", "sessionId": "s-1", "seq": 9}"#,
        br#"{"seq":9,"type":"log","sessionId":"s-1"}"#,
    ] {
        assert_eq!(seq_of_prefix(other), None);
        assert_eq!(seq_of(other), Some(9));
    }
    // Not a number where the seq goes, or not a line at all.
    assert_eq!(seq_of(br#"{"type":"log","sessionId":"s-1","seq":9x}"#), None);
    assert_eq!(
        seq_of(br#"{"type":"log","sessionId":"s-1","seq":99999999999999999999,"#),
        None
    );
    assert_eq!(seq_of(b"garbage"), None);
}

#[test]
fn a_rotated_file_is_replayed_within_the_read_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let line_len = serde_json::to_vec(&event(10_000)).unwrap().len() + 1;
    // A rotated file several read chunks long.
    let cap = (4 * READ_CHUNK) as u64;
    let lines = cap as usize / line_len + 2_000;
    let mut w = JournalWriter::open(tmp.path(), cap).unwrap();
    for seq in 1..=lines as u64 {
        w.queue(&event(seq)).unwrap();
    }
    w.flush().unwrap();
    assert!(rotated_path(tmp.path()).exists());
    let mut cursor = JournalCursor::new(tmp.path(), 1);
    let budget = 64 * 1024;
    let mut got = Vec::new();
    loop {
        let mut out = Vec::new();
        let more = cursor.read_available(&mut out, budget).unwrap();
        // One read may pass the budget by the lines of one chunk, never by a whole rotated file.
        assert!(out.len() <= budget + READ_CHUNK, "{} bytes in one read", out.len());
        got.extend(seqs(&out));
        if !more {
            break;
        }
    }
    assert_eq!(
        got,
        (1..=lines as u64).collect::<Vec<_>>(),
        "the rotated file, then the current one"
    );
}
