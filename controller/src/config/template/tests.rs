//! Tests for config/template.rs: the variables a template sees, strictness (unknown filters, tags,
//! fields and variables), the default prompt, and each appendix of the assembled prompt.

use chrono::{TimeZone, Utc};

use super::*;
use crate::tracker::{Blocker, Comment, Issue};

fn issue() -> Issue {
    Issue {
        id: "uuid-1".into(),
        identifier: "ENG-42".into(),
        title: "Fix the login".into(),
        description: Some("It fails on Safari.".into()),
        state: "Todo".into(),
        priority: Some(2),
        labels: vec!["bug".into(), "web".into()],
        url: Some("https://tracker.invalid/ENG-42".into()),
        branch_name: Some("eng-42-fix-login".into()),
        blocked_by: vec![Blocker {
            id: "uuid-0".into(),
            identifier: "ENG-41".into(),
            state: Some("Done".into()),
        }],
        comments: vec![Comment {
            id: "c1".into(),
            author: "ana".into(),
            body: "Only on iOS".into(),
            created_at: Some(Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()),
        }],
        created_at: Some(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()),
        updated_at: None,
    }
}

fn render(src: &str, issue: &Issue, attempt: Option<u32>) -> Result<String, TemplateError> {
    PromptTemplate::parse(src)?.render(issue, attempt)
}

#[test]
fn every_variable_renders() {
    let src = "{{ issue.id }}|{{ issue.identifier }}|{{ issue.title }}|{{ issue.description }}|{{ issue.state }}|\
               {{ issue.priority }}|{{ issue.labels | join: ',' }}|{{ issue.url }}|{{ issue.branch_name }}|\
               {% for b in issue.blocked_by %}{{ b.id }} {{ b.identifier }} {{ b.state }}{% endfor %}|\
               {% for c in issue.comments %}{{ c.author }}: {{ c.body }} @ {{ c.created_at }}{% endfor %}|\
               {{ issue.created_at }}|{{ issue.updated_at }}|{{ attempt }}";
    let out = render(src, &issue(), Some(3)).unwrap();
    assert_eq!(
        out,
        "uuid-1|ENG-42|Fix the login|It fails on Safari.|Todo|2|bug,web|https://tracker.invalid/ENG-42|\
         eng-42-fix-login|uuid-0 ENG-41 Done|ana: Only on iOS @ 2025-01-02T03:04:05Z|2025-01-01T00:00:00Z||3"
    );
}

#[test]
fn optional_fields_are_nil_so_conditions_work() {
    let bare = Issue {
        id: "1".into(),
        identifier: "ITX-1".into(),
        title: "T".into(),
        state: "Todo".into(),
        description: Some(String::new()),
        ..Default::default()
    };
    let src = "{% if issue.description %}D{% endif %}{% if issue.priority %}P{% endif %}{% if issue.url %}U{% endif %}\
               {% if issue.branch_name %}B{% endif %}{% if issue.created_at %}C{% endif %}{% if attempt %}A{{ attempt }}{% endif %}\
               {{ issue.description | default: 'none' }}";
    assert_eq!(render(src, &bare, None).unwrap(), "none");
    assert_eq!(render(src, &issue(), Some(1)).unwrap(), "DPUBCA1It fails on Safari.");
}

#[test]
fn unknown_variables_fail_the_render_naming_them() {
    let e = render("Hello {{ customer }}", &issue(), None).unwrap_err();
    assert_eq!(
        e,
        TemplateError::Render {
            message: "unknown variable `customer`".into()
        }
    );
    assert_eq!(e.to_string(), "cannot render the prompt: unknown variable `customer`");
    let e = render(
        "{% for c in issue.comments %}{{ c.author_name }}{% endfor %}",
        &issue(),
        None,
    )
    .unwrap_err();
    assert!(e.message().starts_with("unknown variable `c.author_name`"), "{e}");
}

#[test]
fn unknown_issue_fields_are_refused_at_parse_with_their_position() {
    let e = PromptTemplate::parse("Title\n\n  {% if issue.descripton %}x{% endif %}").unwrap_err();
    assert_eq!(e.position(), (Some(3), Some(9)));
    assert!(e.message().starts_with("unknown variable `issue.descripton`"), "{e}");
    // Text outside tags is not a reference, and raw blocks are left alone.
    let ok = "See issue.whatever in the docs. {% raw %}{{ issue.nope }}{% endraw %}";
    assert_eq!(
        render(ok, &issue(), None).unwrap(),
        "See issue.whatever in the docs. {{ issue.nope }}"
    );
}

#[test]
fn unknown_filters_and_tags_and_bad_syntax_are_parse_errors_with_positions() {
    let e = PromptTemplate::parse("line one\nline two {{ issue.title | shout }}").unwrap_err();
    assert_eq!(e.position(), (Some(2), Some(25)));
    assert_eq!(e.message(), "unknown filter `shout`");
    assert_eq!(e.to_string(), "line 2, column 25: unknown filter `shout`");

    let e = PromptTemplate::parse("a\n{% frobnicate %}").unwrap_err();
    assert_eq!(e.position(), (Some(2), Some(4)));
    assert_eq!(e.message(), "unknown tag `frobnicate`");

    let e = PromptTemplate::parse("x\ny {% if %}{% endif %}").unwrap_err();
    assert_eq!(e.position().0, Some(2));
    assert!(!e.message().is_empty());
}

#[test]
fn the_default_prompt_is_used_for_a_blank_body() {
    let t = PromptTemplate::for_body(" \n\n").unwrap();
    let out = t.render(&issue(), None).unwrap();
    assert!(
        out.starts_with("You are working on issue ENG-42: Fix the login\n"),
        "{out}"
    );
    assert!(out.contains("It fails on Safari."), "{out}");
    let t = PromptTemplate::for_body("Own body {{ issue.identifier }}").unwrap();
    assert_eq!(t.render(&issue(), None).unwrap(), "Own body ENG-42");
}

fn marker_line_count(prompt: &str) -> usize {
    prompt.lines().filter(|l| *l == NEEDS_INPUT_MARKER).count()
}

#[test]
fn solo_adds_only_the_human_input_appendix() {
    let out = assemble_prompt("Do the thing.\n\n", AgentMode::Solo, &PromptExtras::default());
    assert!(out.starts_with("Do the thing.\n\n## When you need a human\n"), "{out}");
    assert_eq!(marker_line_count(&out), 1, "the marker stands on its own line");
    assert!(!out.contains("subagent") && !out.contains("team"), "{out}");
    assert!(out.ends_with('\n'));
}

#[test]
fn subagents_mode_asks_for_the_task_tool() {
    let out = assemble_prompt("Body", AgentMode::Subagents, &PromptExtras::default());
    let appendix = out.find("## Working with subagents").expect("subagents appendix");
    assert!(out[appendix..].contains("Task tool"));
    assert!(appendix < out.find("## When you need a human").unwrap());
    assert_eq!(marker_line_count(&out), 1);
}

#[test]
fn teams_mode_describes_the_roster() {
    let out = assemble_prompt("Body", AgentMode::Teams, &PromptExtras::default());
    assert!(out.contains("## Working as a team"));
    for role in ["**Architect**", "**Implementers**", "**Tester**", "**Reviewer**"] {
        assert!(out.contains(role), "{role} missing from:\n{out}");
    }
    assert!(out.contains("Task tool"));
}

#[test]
fn extras_follow_the_mode_appendix_and_precede_the_human_input_appendix() {
    let extras = PromptExtras {
        human_reply: Some(HumanReply {
            question: Some("Which database?\nPostgres or SQLite?".into()),
            reply: "SQLite, bundled.".into(),
        }),
        sections: vec!["## Run context\nHost: build1".into(), "  ".into()],
    };
    let out = assemble_prompt("Body", AgentMode::Subagents, &extras);
    let order = [
        "Body",
        "## Working with subagents",
        "## Run context\nHost: build1",
        "## Answer from a human\n\nYou asked:\n\n> Which database?\n> Postgres or SQLite?\n\nThe answer:\n\nSQLite, bundled.",
        "## When you need a human",
    ];
    let mut at = 0;
    for part in order {
        let found = out[at..]
            .find(part)
            .unwrap_or_else(|| panic!("{part:?} not after byte {at} in:\n{out}"));
        at += found + part.len();
    }
    // A reply without its question is given as is.
    let bare = PromptExtras {
        human_reply: Some(HumanReply {
            question: None,
            reply: "Yes.".into(),
        }),
        sections: Vec::new(),
    };
    let out = assemble_prompt("Body", AgentMode::Solo, &bare);
    assert!(
        out.contains("## Answer from a human\n\nYes.\n\n## When you need a human"),
        "{out}"
    );
}
