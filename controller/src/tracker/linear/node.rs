//! Linear's issue and project nodes (GraphQL JSON) to the domain types. Required fields missing or
//! of the wrong type make the node malformed; optional ones that do not fit become empty.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::tracker::{Blocker, Comment, Issue, Project};

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn required(v: &Value, path: &[&str]) -> Result<String, String> {
    match str_at(v, path) {
        Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
        _ => Err(format!("missing or empty `{}`", path.join("."))),
    }
}

fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.get(key)?.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn nodes<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key)
        .and_then(|c| c.get("nodes"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// An issue node (`ItervoxIssueFields`, plus `comments` when asked for).
pub(super) fn issue(node: &Value) -> Result<Issue, String> {
    if !node.is_object() {
        return Err("an issue node is not an object".into());
    }
    let identifier = required(node, &["identifier"])?;
    let describe = |e: String| format!("issue {identifier}: {e}");
    let id = required(node, &["id"]).map_err(describe)?;
    let title = required(node, &["title"]).map_err(describe)?;
    let state = required(node, &["state", "name"]).map_err(describe)?;

    // Linear: 0 = no priority, 1 = urgent … 4 = low.
    let priority = node
        .get("priority")
        .and_then(Value::as_f64)
        .filter(|p| p.is_finite() && *p >= 1.0)
        .map(|p| p.round() as i64);

    let blocked_by = nodes(node, "inverseRelations")
        .filter(|r| r.get("type").and_then(Value::as_str) == Some("blocks"))
        .filter_map(|r| {
            let blocker = r.get("issue")?;
            Some(Blocker {
                id: str_at(blocker, &["id"])?.to_string(),
                identifier: str_at(blocker, &["identifier"])?.to_string(),
                state: str_at(blocker, &["state", "name"]).map(str::to_string),
            })
        })
        .collect();

    let mut comments: Vec<Comment> = nodes(node, "comments")
        .filter_map(|c| {
            let user = c.get("user");
            let author = user
                .and_then(|u| str_at(u, &["displayName"]).or_else(|| str_at(u, &["name"])))
                .unwrap_or("unknown");
            Some(Comment {
                id: str_at(c, &["id"])?.to_string(),
                author: author.to_string(),
                body: str_at(c, &["body"]).unwrap_or_default().to_string(),
                created_at: time(c, "createdAt"),
            })
        })
        .collect();
    comments.sort_by_key(|c| c.created_at);

    Ok(Issue {
        id,
        identifier,
        title,
        description: str_at(node, &["description"])
            .filter(|d| !d.trim().is_empty())
            .map(str::to_string),
        state,
        priority,
        labels: nodes(node, "labels")
            .filter_map(|l| str_at(l, &["name"]))
            .map(str::to_lowercase)
            .collect(),
        url: str_at(node, &["url"]).map(str::to_string),
        branch_name: str_at(node, &["branchName"])
            .filter(|b| !b.is_empty())
            .map(str::to_string),
        blocked_by,
        comments,
        created_at: time(node, "createdAt"),
        updated_at: time(node, "updatedAt"),
    })
}

/// A project node `{id, name, slugId}`.
pub(super) fn project(node: &Value) -> Result<Project, String> {
    Ok(Project {
        id: required(node, &["id"])?,
        name: str_at(node, &["name"]).unwrap_or_default().to_string(),
        slug: required(node, &["slugId"])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_node_converts() {
        let node = json!({
            "id": "uuid-1", "identifier": "ENG-1", "title": "T", "description": "",
            "priority": 2.0, "url": "https://linear.app/x/issue/ENG-1", "branchName": "eng-1-t",
            "createdAt": "2025-01-01T00:00:00.000Z", "updatedAt": "bad",
            "state": {"name": "Todo"},
            "labels": {"nodes": [{"name": "Bug"}, {"name": "UI"}]},
            "inverseRelations": {"nodes": [
                {"type": "blocks", "issue": {"id": "uuid-0", "identifier": "ENG-0", "state": {"name": "Done"}}},
                {"type": "related", "issue": {"id": "uuid-9", "identifier": "ENG-9", "state": {"name": "Todo"}}}
            ]},
            "comments": {"nodes": [
                {"id": "c2", "body": "second", "createdAt": "2025-01-03T00:00:00Z", "user": {"name": "b"}},
                {"id": "c1", "body": "first", "createdAt": "2025-01-02T00:00:00Z", "user": null}
            ]}
        });
        let i = issue(&node).unwrap();
        assert_eq!(i.labels, vec!["bug", "ui"]);
        assert_eq!(i.priority, Some(2));
        assert_eq!(i.description, None);
        assert_eq!(i.updated_at, None, "an unreadable optional time is dropped");
        assert_eq!(i.blocked_by.len(), 1);
        assert_eq!(i.blocked_by[0].identifier, "ENG-0");
        assert_eq!(i.blocked_by[0].state.as_deref(), Some("Done"));
        assert_eq!(i.comments[0].body, "first");
        assert_eq!(i.comments[0].author, "unknown");
        assert_eq!(i.comments[1].author, "b");
    }

    #[test]
    fn no_priority_is_none_and_required_fields_are_required() {
        let ok = json!({"id": "u", "identifier": "E-1", "title": "T", "priority": 0, "state": {"name": "Todo"}});
        assert_eq!(issue(&ok).unwrap().priority, None);
        let no_state = json!({"id": "u", "identifier": "E-1", "title": "T", "state": null});
        assert!(issue(&no_state).unwrap_err().contains("state.name"));
        assert!(issue(&json!({"id": "u", "title": "T"})).is_err());
        assert!(issue(&json!("nope")).is_err());
    }
}
