//! SSE framing: line endings, chunk boundaries, comments, multi-line data, `id:`/`event:`/`retry:`.

use super::*;

fn ev(event: &str, data: &str, id: Option<&str>) -> SseEvent {
    SseEvent {
        event: event.into(),
        data: data.into(),
        id: id.map(str::to_string),
    }
}

/// Parses `input` fed in one chunk and again one byte at a time; both must give the same events.
#[track_caller]
fn check(input: &str, expected: &[SseEvent]) {
    let mut whole = SseParser::new();
    assert_eq!(whole.push(input.as_bytes()), expected, "fed whole");
    let mut bytewise = SseParser::new();
    let mut got = Vec::new();
    for b in input.as_bytes() {
        got.extend(bytewise.push(std::slice::from_ref(b)));
    }
    assert_eq!(got, expected, "fed byte by byte");
}

#[test]
fn a_data_line_and_a_blank_line_make_a_message() {
    check("data: {\"a\":1}\n\n", &[ev("message", "{\"a\":1}", None)]);
}

#[test]
fn data_lines_are_joined_with_newlines() {
    check(
        "data: first\ndata: second\ndata:\ndata:third\n\n",
        &[ev("message", "first\nsecond\n\nthird", None)],
    );
}

#[test]
fn comments_and_keepalives_are_ignored() {
    check(
        ":keepalive\n\n: another comment\ndata: x\n:mid-event comment\n\n",
        &[ev("message", "x", None)],
    );
}

#[test]
fn id_and_event_fields_are_kept_and_id_persists() {
    check(
        "id: 7\nevent: log\ndata: one\n\ndata: two\n\nevent: gap\ndata: {}\nid: 9\n\n",
        &[
            ev("log", "one", Some("7")),
            ev("message", "two", Some("7")),
            ev("gap", "{}", Some("9")),
        ],
    );
    let mut p = SseParser::new();
    p.push(b"id: 41\ndata: a\n\nid: 42\n\n");
    assert_eq!(
        p.last_event_id(),
        Some("42"),
        "an id without data still moves the cursor"
    );
}

#[test]
fn an_empty_id_resets_the_cursor() {
    let mut p = SseParser::new();
    p.push(b"id: 3\ndata: a\n\nid\ndata: b\n\n");
    assert_eq!(p.last_event_id(), None);
}

#[test]
fn crlf_and_cr_line_endings_work_even_split_across_chunks() {
    check(
        "data: a\r\n\r\ndata: b\r\rdata: c\n\n",
        &[
            ev("message", "a", None),
            ev("message", "b", None),
            ev("message", "c", None),
        ],
    );
    let mut p = SseParser::new();
    assert_eq!(p.push(b"data: a\r"), vec![]);
    assert_eq!(p.push(b"\n\r"), vec![ev("message", "a", None)]);
    assert_eq!(
        p.push(b"\n"),
        vec![],
        "the LF after a chunk-final CR is not a second blank line"
    );
}

#[test]
fn an_event_without_data_is_not_dispatched() {
    check("event: log\n\n", &[]);
    check("event: keepalive\n\ndata: x\n\n", &[ev("message", "x", None)]);
}

#[test]
fn an_unfinished_event_waits_for_its_blank_line() {
    let mut p = SseParser::new();
    assert_eq!(p.push(b"data: {\"half"), vec![]);
    assert_eq!(p.push(b"\":true}\n"), vec![]);
    assert_eq!(p.push(b"\n"), vec![ev("message", "{\"half\":true}", None)]);
}

#[test]
fn fields_without_colon_and_unknown_fields() {
    check("data\n\n", &[ev("message", "", None)]);
    check("foo: bar\ndata: x\n\n", &[ev("message", "x", None)]);
    check("data:  two spaces\n\n", &[ev("message", " two spaces", None)]);
    check("data: a:b\n\n", &[ev("message", "a:b", None)]);
}

#[test]
fn retry_is_read_when_numeric() {
    let mut p = SseParser::new();
    p.push(b"retry: 1500\n\n");
    assert_eq!(p.retry_ms(), Some(1500));
    p.push(b"retry: soon\n\n");
    assert_eq!(p.retry_ms(), Some(1500));
}

#[test]
fn a_leading_byte_order_mark_is_stripped() {
    let mut p = SseParser::new();
    assert_eq!(p.push(b"\xEF\xBB\xBFdata: x\n\n"), vec![ev("message", "x", None)]);
}

#[test]
fn utf8_split_across_chunks_survives() {
    let text = "data: café ✓\n\n".as_bytes();
    let mut p = SseParser::new();
    let mut got = p.push(&text[..10]);
    got.extend(p.push(&text[10..]));
    assert_eq!(got, vec![ev("message", "café ✓", None)]);
}

#[test]
fn an_overlong_line_drops_its_event_and_parsing_continues() {
    let mut p = SseParser::new();
    let mut big = b"data: ".to_vec();
    big.resize(MAX_LINE_BYTES + 10, b'x');
    assert_eq!(p.push(&big), vec![]);
    assert_eq!(
        p.push(b"\ndata: tail\n\n"),
        vec![],
        "the damaged event is dropped whole"
    );
    assert_eq!(p.push(b"data: next\n\n"), vec![ev("message", "next", None)]);
}
