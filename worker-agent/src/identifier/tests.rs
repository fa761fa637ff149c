//! Table tests of identifier sanitisation and session id validation.

use super::*;

#[test]
fn sanitisation_table() {
    let cases: &[(&str, &str)] = &[
        ("ITX-42", "ITX-42"),
        ("owner/repo#42", "owner_repo_42"),
        ("../x", "_._x"),
        ("a/b", "a_b"),
        (".", "_"),
        ("..", "_."),
        ("", "_"),
        (".hidden", "_hidden"),
        ("a\0b", "a_b"),
        ("tâche-été", "t_che-_t_"),
        ("日本", "__"),
        ("with space\ttab\nnl", "with_space_tab_nl"),
        ("C:\\win", "C__win"),
        ("keep._-", "keep._-"),
    ];
    for (input, want) in cases {
        assert_eq!(sanitise_identifier(input), *want, "input {input:?}");
    }
}

#[test]
fn long_identifiers_are_capped_with_a_distinguishing_hash() {
    let a = "A".repeat(300);
    let b = format!("{}B", "A".repeat(299));
    let sa = sanitise_identifier(&a);
    let sb = sanitise_identifier(&b);
    assert_eq!(sa.len(), MAX_COMPONENT_LEN);
    assert_eq!(sb.len(), MAX_COMPONENT_LEN);
    assert_ne!(sa, sb, "same prefix, different identifiers must not collide");
    assert!(sa.starts_with("AAAA"));
    assert_eq!(sanitise_identifier(&a), sa, "stable");

    // Exactly at the limit: untouched.
    let exact = "x".repeat(MAX_COMPONENT_LEN);
    assert_eq!(sanitise_identifier(&exact), exact);
    // Multi-byte characters longer than the cap.
    let wide = "é".repeat(200);
    let s = sanitise_identifier(&wide);
    assert_eq!(s.len(), MAX_COMPONENT_LEN);
    assert!(s.is_ascii());
}

#[test]
fn sanitised_names_are_always_one_plain_component() {
    let nasty = [
        "",
        ".",
        "..",
        "../..",
        "/",
        "/etc/passwd",
        "a/../../b",
        "\0",
        "..\0..",
        "~",
        "-rf",
    ];
    for input in nasty {
        let s = sanitise_identifier(input);
        assert!(!s.is_empty());
        assert!(!s.starts_with('.'), "{input:?} -> {s:?}");
        assert!(!s.contains('/') && !s.contains('\0'), "{input:?} -> {s:?}");
        let p = std::path::Path::new("/root").join(&s);
        assert_eq!(p.parent(), Some(std::path::Path::new("/root")), "{input:?}");
        assert_eq!(
            p.components().count(),
            3,
            "{input:?} must stay a direct child of the root"
        );
    }
}

#[test]
fn session_ids() {
    assert!(validate_session_id("s-1").is_ok());
    assert!(validate_session_id("run_2026.12.04-abc").is_ok());
    for bad in ["", ".", "..", "../x", "a/b", "a b", ".x", "ü", &"x".repeat(129)] {
        let err = validate_session_id(bad).unwrap_err();
        assert_eq!(err.id, bad);
    }
}
