//! The GraphQL documents the Linear adapter sends. Everything that varies travels in `variables`, so
//! the documents are constants and each has an operation name the request also carries.
//!
//! Nested connections are kept small (`first: 20`) because Linear rejects a query whose complexity
//! (objects × requested page sizes) is too high, and a page holds 50 issues.

/// The fields of an issue every read asks for.
const ISSUE_FIELDS: &str = "
fragment ItervoxIssueFields on Issue {
  id
  identifier
  title
  description
  priority
  url
  branchName
  createdAt
  updatedAt
  state { name }
  labels(first: 20) { nodes { name } }
  inverseRelations(first: 20) { nodes { type issue { id identifier state { name } } } }
}";

/// A page of issues matching `$filter` (`pageInfo` drives the pagination).
pub(super) const ISSUES: (&str, &str) = (
    "ItervoxIssues",
    "query ItervoxIssues($filter: IssueFilter, $first: Int!, $after: String) {
  issues(filter: $filter, first: $first, after: $after) {
    nodes { ...ItervoxIssueFields }
    pageInfo { hasNextPage endCursor }
  }
}",
);

/// One issue (by UUID or identifier) with its comments.
pub(super) const ISSUE: (&str, &str) = (
    "ItervoxIssue",
    "query ItervoxIssue($id: String!) {
  issue(id: $id) {
    ...ItervoxIssueFields
    comments(first: 100) { nodes { id body createdAt user { name displayName } } }
  }
}",
);

/// What a write needs to know about an issue: its UUID, current state and team.
pub(super) const ISSUE_TEAM: (&str, &str) = (
    "ItervoxIssueTeam",
    "query ItervoxIssueTeam($id: String!) {
  issue(id: $id) { id identifier state { name } team { id } }
}",
);

/// Whether a comment containing `$marker` exists on the issue.
pub(super) const COMMENT_WITH_MARKER: (&str, &str) = (
    "ItervoxCommentWithMarker",
    "query ItervoxCommentWithMarker($id: String!, $marker: String!) {
  issue(id: $id) {
    id
    comments(first: 1, filter: { body: { contains: $marker } }) { nodes { id } }
  }
}",
);

/// A team's workflow states (names to ids).
pub(super) const WORKFLOW_STATES: (&str, &str) = (
    "ItervoxWorkflowStates",
    "query ItervoxWorkflowStates($teamId: ID!) {
  workflowStates(first: 250, filter: { team: { id: { eq: $teamId } } }) {
    nodes { id name type }
  }
}",
);

pub(super) const ISSUE_UPDATE_STATE: (&str, &str) = (
    "ItervoxIssueUpdateState",
    "mutation ItervoxIssueUpdateState($id: String!, $stateId: String!) {
  issueUpdate(id: $id, input: { stateId: $stateId }) {
    success
    issue { id state { name } }
  }
}",
);

pub(super) const COMMENT_CREATE: (&str, &str) = (
    "ItervoxCommentCreate",
    "mutation ItervoxCommentCreate($issueId: String!, $body: String!) {
  commentCreate(input: { issueId: $issueId, body: $body }) {
    success
    comment { id }
  }
}",
);

pub(super) const PROJECTS: (&str, &str) = (
    "ItervoxProjects",
    "query ItervoxProjects($after: String) {
  projects(first: 50, after: $after) {
    nodes { id name slugId }
    pageInfo { hasNextPage endCursor }
  }
}",
);

/// The document to send for an operation: the query plus the fragment when it uses it.
pub(super) fn document(query: &str) -> String {
    if query.contains("...ItervoxIssueFields") {
        format!("{query}\n{ISSUE_FIELDS}")
    } else {
        query.to_string()
    }
}
