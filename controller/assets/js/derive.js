// Derives what the views show from API payloads (StateSnapshot, TrackerIssue[], IssueLogEntry[]).
// Pure functions and one small buffer class, no DOM and no clock, so they are testable in isolation.

import { parseTime } from './format.js';

const norm = (s) => String(s ?? '').trim().toLowerCase();

/**
 * The orchestrator's view of an issue from the live snapshot, which is fresher than the tracker
 * list: 'running' | 'input_required' | 'retrying' | 'paused', else `fallback` (or 'idle').
 */
export function orchestratorStateOf(identifier, snapshot, fallback = 'idle') {
  if (!snapshot) return fallback || 'idle';
  if ((snapshot.running ?? []).some((r) => r.identifier === identifier)) return 'running';
  if ((snapshot.inputRequired ?? []).some((r) => r.identifier === identifier)) return 'input_required';
  if ((snapshot.retrying ?? []).some((r) => r.identifier === identifier)) return 'retrying';
  if ((snapshot.paused ?? []).includes(identifier)) return 'paused';
  // The snapshot lists every non-idle issue, so an issue it does not list is idle now.
  return 'idle';
}

/** Priority order: 1 (urgent) .. 4 (low), then 0/none last. */
function priorityRank(p) {
  return Number.isInteger(p) && p > 0 ? p : 99;
}

/**
 * Groups tracker issues into board columns, in workflow order: backlog states, active states,
 * then the completion and terminal states, then any state the configuration does not name.
 * Each column: { key, title, kind: 'backlog'|'active'|'done'|'other', issues }.
 */
export function boardColumns(issues, snapshot) {
  const columns = [];
  const byState = new Map();
  const add = (state, kind) => {
    const key = norm(state);
    if (!key || byState.has(key)) return;
    const column = { key, title: String(state).trim(), kind, issues: [] };
    byState.set(key, column);
    columns.push(column);
  };
  const s = snapshot ?? {};
  for (const state of s.backlogStates ?? []) add(state, 'backlog');
  for (const state of s.activeStates ?? []) add(state, 'active');
  if (s.completionState) add(s.completionState, 'done');
  for (const state of s.terminalStates ?? []) add(state, 'done');
  for (const issue of issues ?? []) {
    add(issue.state || '(no state)', 'other');
    byState.get(norm(issue.state || '(no state)')).issues.push(issue);
  }
  for (const column of columns) {
    column.issues.sort((a, b) =>
      priorityRank(a.priority) - priorityRank(b.priority) ||
      String(a.identifier).localeCompare(String(b.identifier), 'en', { numeric: true }));
  }
  return columns;
}

/** Whether an issue matches a free-text board filter (identifier, title, labels, state). */
export function issueMatches(issue, query) {
  const q = norm(query);
  if (!q) return true;
  const hay = [issue.identifier, issue.title, issue.state, ...(issue.labels ?? [])].map(norm).join(' ');
  return q.split(/\s+/).every((word) => hay.includes(word));
}

/** A stable identity for a log entry: its session and sequence, else its content. */
export function logKey(entry) {
  if (entry && Number.isInteger(entry.seq)) return `${entry.sessionId ?? ''}#${entry.seq}`;
  return `~${entry?.time}|${entry?.event}|${entry?.tool ?? ''}|${entry?.message}`;
}

/**
 * An ordered, de-duplicated, bounded log: the initial GET /logs and the live stream overlap, and a
 * reconnecting stream may replay lines, so every line is keyed and kept once.
 */
export class LogBuffer {
  constructor(limit = 5000) {
    this.limit = limit;
    this.entries = [];
    this.keys = new Set();
    this.dropped = 0;
  }

  /** Adds an entry; returns false when it was already there. */
  add(entry) {
    const key = logKey(entry);
    if (this.keys.has(key)) return false;
    this.keys.add(key);
    this.entries.push(entry);
    while (this.entries.length > this.limit) {
      this.keys.delete(logKey(this.entries.shift()));
      this.dropped += 1;
    }
    return true;
  }

  clear() {
    this.entries = [];
    this.keys.clear();
    this.dropped = 0;
  }
}

/**
 * Groups sub-agent log entries per session, sessions in order of their first entry, entries in
 * sequence order: [{ sessionId, entries, firstTime, lastTime }].
 */
export function groupBySession(entries) {
  const groups = new Map();
  for (const entry of entries ?? []) {
    const id = entry.sessionId ?? '';
    if (!groups.has(id)) groups.set(id, { sessionId: id, entries: [] });
    groups.get(id).entries.push(entry);
  }
  const order = (a, b) => {
    if (Number.isInteger(a.seq) && Number.isInteger(b.seq)) return a.seq - b.seq;
    return (parseTime(a.time) || 0) - (parseTime(b.time) || 0);
  };
  const out = [...groups.values()];
  for (const group of out) {
    group.entries.sort(order);
    group.firstTime = group.entries[0]?.time;
    group.lastTime = group.entries[group.entries.length - 1]?.time;
  }
  out.sort((a, b) => (parseTime(a.firstTime) || 0) - (parseTime(b.firstTime) || 0));
  return out;
}

/** History rows newest first (by finish time; rows without one last). */
export function sortHistory(history) {
  const t = (row) => {
    const ms = parseTime(row.finishedAt);
    return Number.isNaN(ms) ? -Infinity : ms;
  };
  return [...(history ?? [])].sort((a, b) => t(b) - t(a));
}

/** Retry rows soonest due first. */
export function sortRetries(retrying) {
  const t = (row) => {
    const ms = parseTime(row.dueAt);
    return Number.isNaN(ms) ? Infinity : ms;
  };
  return [...(retrying ?? [])].sort((a, b) => t(a) - t(b));
}

/** A host's load for a meter: capacity 0 means no per-host cap. */
export function hostLoad(host) {
  const running = Number(host?.running) || 0;
  const capacity = Number(host?.capacity) || 0;
  if (capacity <= 0) return { running, capacity: 0, ratio: null, label: `${running} running (no cap)` };
  return { running, capacity, ratio: Math.min(1, running / capacity), label: `${running} / ${capacity}` };
}

/** Agents in use against the configured maximum. */
export function capacityInUse(snapshot) {
  const running = snapshot?.counts?.running ?? (snapshot?.running ?? []).length;
  const max = snapshot?.maxConcurrentAgents ?? 0;
  return { running, max, ratio: max > 0 ? Math.min(1, running / max) : null };
}

/**
 * The server-clock instant a running session started, for a live elapsed counter: the snapshot's
 * generation time minus its elapsedMs, falling back to startedAt.
 */
export function runningSince(row, generatedAtMs) {
  if (Number.isFinite(generatedAtMs) && Number.isFinite(row?.elapsedMs)) return generatedAtMs - row.elapsedMs;
  return parseTime(row?.startedAt);
}

/** The backends a picker offers: the known two plus any the server lists models for. */
export function backendChoices(snapshot) {
  const set = new Set(['claude', 'codex']);
  for (const name of Object.keys(snapshot?.availableModels ?? {})) set.add(name);
  return [...set];
}

/** The pause reason of an issue, if the snapshot gives one. */
export function pauseReasonOf(identifier, snapshot) {
  return snapshot?.pauseReasons?.[identifier] ?? '';
}
