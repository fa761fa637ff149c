//! Error messages for frames that cannot be parsed.

use super::*;

fn explain(text: &str) -> (RequestId, String) {
    let err = serde_json::from_str::<ControllerFrame>(text).unwrap_err();
    explain_bad_frame(text.as_bytes(), &err)
}

#[test]
fn bad_frames_name_what_is_wrong() {
    let (id, msg) = explain("{not json");
    assert_eq!(id, 0);
    assert!(msg.contains("not valid JSON"), "{msg}");

    let (id, msg) = explain(r#"{"id":4}"#);
    assert_eq!(id, 4);
    assert!(msg.contains("no \"type\""), "{msg}");

    let (id, msg) = explain(r#"{"type":"frobnicate","id":5}"#);
    assert_eq!(id, 5);
    assert!(msg.contains("frobnicate") && msg.contains("unknown variant"), "{msg}");

    let (id, msg) = explain(r#"{"type":"cancel","id":6}"#);
    assert_eq!(id, 6);
    assert!(msg.contains("sessionId"), "{msg}");
}
