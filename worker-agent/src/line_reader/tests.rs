//! Line splitting, the size cap and partial last lines.

use super::*;

async fn all_lines(input: &[u8], max: usize) -> Vec<Line> {
    let mut reader = LineReader::new(input, max);
    let mut out = Vec::new();
    while let Some(line) = reader.next_line().await.unwrap() {
        out.push(line);
    }
    out
}

fn complete(s: &str) -> Line {
    Line::Complete(s.as_bytes().to_vec())
}

#[tokio::test]
async fn splits_lines_and_keeps_a_partial_last_line() {
    let lines = all_lines(b"one\ntwo\n\nthree", 100).await;
    assert_eq!(
        lines,
        vec![complete("one"), complete("two"), complete(""), complete("three")]
    );
    assert!(all_lines(b"", 100).await.is_empty());
}

#[tokio::test]
async fn oversized_lines_are_reported_and_skipped() {
    let mut input = b"short\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 50));
    input.extend(b"\nafter\n");
    input.extend(std::iter::repeat_n(b'y', 20));
    let lines = all_lines(&input, 10).await;
    assert_eq!(
        lines,
        vec![
            complete("short"),
            Line::TooLong { len: 50 },
            complete("after"),
            Line::TooLong { len: 20 },
        ]
    );
}

#[tokio::test]
async fn a_line_exactly_at_the_cap_is_kept() {
    let lines = all_lines(b"0123456789\n", 10).await;
    assert_eq!(lines, vec![complete("0123456789")]);
}

#[tokio::test]
async fn lines_spanning_many_reads_are_joined() {
    // Larger than the internal 64 KiB buffer, so the line arrives in several chunks.
    let big = "z".repeat(200_000);
    let input = format!("{big}\nend\n");
    let lines = all_lines(input.as_bytes(), 1 << 20).await;
    assert_eq!(lines, vec![complete(&big), complete("end")]);
}

#[tokio::test]
async fn buffered_lines_come_without_reading_and_keep_partial_lines() {
    let (mut tx, rx) = tokio::io::duplex(1024);
    let mut reader = LineReader::new(rx, 10);
    assert_eq!(
        reader.buffered_line(),
        None,
        "nothing is buffered before the first read"
    );
    tokio::io::AsyncWriteExt::write_all(&mut tx, b"one\ntwo\n0123456789abc\nthr")
        .await
        .unwrap();
    assert_eq!(reader.next_line().await.unwrap(), Some(complete("one")));
    assert_eq!(reader.buffered_line(), Some(complete("two")));
    assert_eq!(reader.buffered_line(), Some(Line::TooLong { len: 13 }));
    // "thr" has no newline yet: it stays in the reader.
    assert_eq!(reader.buffered_line(), None);
    tokio::io::AsyncWriteExt::write_all(&mut tx, b"ee\nfour").await.unwrap();
    drop(tx);
    assert_eq!(reader.next_line().await.unwrap(), Some(complete("three")));
    assert_eq!(
        reader.buffered_line(),
        None,
        "a last line without a newline waits for the end"
    );
    assert_eq!(reader.next_line().await.unwrap(), Some(complete("four")));
    assert_eq!(reader.next_line().await.unwrap(), None);
}
