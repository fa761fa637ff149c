//! GitHub's issue and comment JSON, read into what the adapter needs, plus the conventions Itervox
//! keeps in issue text: blocker phrases in the body (`Blocked by #12`, `Depends on #3, #4`), priority
//! labels (`P1`, `priority: high`) and the hidden branch marker comment.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde_json::Value;

use crate::tracker::Comment;

/// An issue or pull request as the REST API returns it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct GhIssue {
    pub(super) number: u64,
    pub(super) title: String,
    pub(super) body: Option<String>,
    pub(super) open: bool,
    /// Label names as written in GitHub (not lower-cased), in the API's order.
    pub(super) labels: Vec<String>,
    pub(super) html_url: Option<String>,
    pub(super) created_at: Option<DateTime<Utc>>,
    pub(super) updated_at: Option<DateTime<Utc>>,
    /// Items with a `pull_request` key are pull requests, never issues.
    pub(super) is_pull_request: bool,
}

fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.get(key)?.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Reads one item of `GET /repos/{o}/{r}/issues` or `GET …/issues/{n}`. `number`, `title` and
/// `state` are required; the rest is optional.
pub(super) fn parse_issue(v: &Value) -> Result<GhIssue, String> {
    let number = v
        .get("number")
        .and_then(Value::as_u64)
        .ok_or("an issue without a numeric `number`")?;
    let title = v
        .get("title")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("issue #{number} has no `title`"))?;
    let open = match v.get("state").and_then(Value::as_str) {
        Some("open") => true,
        Some("closed") => false,
        other => return Err(format!("issue #{number} has the state {other:?}")),
    };
    let labels = v
        .get("labels")
        .and_then(Value::as_array)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|l| l.get("name").and_then(Value::as_str).or_else(|| l.as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(GhIssue {
        number,
        title: title.to_string(),
        body: v.get("body").and_then(Value::as_str).map(str::to_string),
        open,
        labels,
        html_url: v.get("html_url").and_then(Value::as_str).map(str::to_string),
        created_at: time(v, "created_at"),
        updated_at: time(v, "updated_at"),
        is_pull_request: v.get("pull_request").is_some_and(|p| !p.is_null()),
    })
}

/// A comment of `GET …/issues/{n}/comments`: its numeric id and the domain comment.
pub(super) fn parse_comment(v: &Value) -> Option<(u64, Comment)> {
    let id = v.get("id")?.as_u64()?;
    Some((
        id,
        Comment {
            id: id.to_string(),
            author: v
                .get("user")
                .and_then(|u| u.get("login"))
                .and_then(Value::as_str)
                .unwrap_or("ghost")
                .to_string(),
            body: v.get("body").and_then(Value::as_str).unwrap_or_default().to_string(),
            created_at: time(v, "created_at"),
        },
    ))
}

static BLOCKER_PHRASE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(?:blocked\s+by|depends\s+on)\b([^\n]*)").expect("blocker phrase regex"));
static ISSUE_REF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[^\w/])#(\d+)\b").expect("issue reference regex"));
static BRANCH_MARKER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<!-- itervox:branch:(.+?) -->").expect("branch marker regex"));

/// Issue numbers named after "blocked by" / "depends on" on the same line, in order, without
/// duplicates.
pub(super) fn blockers_in(body: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for phrase in BLOCKER_PHRASE.captures_iter(body) {
        for r in ISSUE_REF.captures_iter(&phrase[1]) {
            if let Ok(n) = r[1].parse::<u64>()
                && !out.contains(&n)
            {
                out.push(n);
            }
        }
    }
    out
}

/// Priority from labels: `P0`…`P4` give 0…4; `priority: urgent|high|medium|low` give 1…4 (Linear's
/// scale, lower = more urgent); `priority: N` gives N.
pub(super) fn priority_from_labels(labels: &[String]) -> Option<i64> {
    labels.iter().find_map(|label| {
        let l = label.trim().to_ascii_lowercase();
        if let Some(n) = l.strip_prefix('p')
            && n.len() == 1
        {
            return n.parse::<i64>().ok().filter(|p| (0..=4).contains(p));
        }
        let rest = l.strip_prefix("priority")?.trim_start_matches([':', '/', '-', ' ']);
        match rest {
            "urgent" | "critical" => Some(1),
            "high" => Some(2),
            "medium" | "normal" => Some(3),
            "low" => Some(4),
            n => n.parse::<i64>().ok().filter(|p| (0..=4).contains(p)),
        }
    })
}

/// The branch a marker comment records, if the body holds one.
pub(super) fn branch_marker(body: &str) -> Option<String> {
    BRANCH_MARKER
        .captures(body)
        .map(|c| c[1].trim().to_string())
        .filter(|b| !b.is_empty())
}

/// The body of the comment that records the branch: one visible line and the hidden marker.
pub(super) fn branch_comment_body(branch: &str) -> String {
    format!("Itervox is working on branch `{branch}`.\n\n<!-- itervox:branch:{branch} -->")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn issues_and_pull_requests_parse() {
        let v = json!({
            "number": 7, "title": "T", "state": "open", "body": null,
            "labels": [{"name": "In Progress"}, {"name": "bug"}],
            "html_url": "https://github.com/o/r/issues/7", "created_at": "2025-01-01T00:00:00Z"
        });
        let i = parse_issue(&v).unwrap();
        assert_eq!(i.labels, vec!["In Progress", "bug"]);
        assert!(i.open && !i.is_pull_request);
        assert!(i.created_at.is_some());
        let pr = json!({"number": 8, "title": "PR", "state": "closed", "pull_request": {"url": "x"}});
        let pr = parse_issue(&pr).unwrap();
        assert!(pr.is_pull_request && !pr.open);
        assert!(parse_issue(&json!({"number": 9, "state": "open"})).is_err());
        assert!(parse_issue(&json!({"number": "9", "title": "x", "state": "open"})).is_err());
        assert!(parse_issue(&json!({"number": 9, "title": "x", "state": "merged"})).is_err());
    }

    #[test]
    fn blocker_phrases_name_issue_numbers() {
        let body = "Intro #99 is not a blocker.\nBlocked by #12 and #13.\nDepends on: #4, #12\nsee owner/repo#5";
        assert_eq!(blockers_in(body), vec![12, 13, 4]);
        assert!(blockers_in("nothing here").is_empty());
    }

    #[test]
    fn priority_labels() {
        let l = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(priority_from_labels(&l(&["bug", "P1"])), Some(1));
        assert_eq!(priority_from_labels(&l(&["priority: high"])), Some(2));
        assert_eq!(priority_from_labels(&l(&["Priority/low"])), Some(4));
        assert_eq!(priority_from_labels(&l(&["priority-3"])), Some(3));
        assert_eq!(priority_from_labels(&l(&["p9", "pending"])), None);
    }

    #[test]
    fn branch_markers_round_trip() {
        let body = branch_comment_body("itervox/ITX-7");
        assert_eq!(branch_marker(&body).as_deref(), Some("itervox/ITX-7"));
        assert_eq!(branch_marker("no marker"), None);
    }
}
