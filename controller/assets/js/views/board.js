// The issue board: tracker issues (GET /issues) in columns by tracker state (backlog, active,
// completion/terminal), each card with the orchestrator's state and why an idle issue waits. The
// list is refetched when the snapshot changes, at most once per REFETCH_MS.

import { h, chip, empty, setChildren } from '../dom.js';
import { api, describeError } from '../api.js';
import { issuePath } from '../router.js';
import { boardColumns, issueMatches, orchestratorStateOf } from '../derive.js';
import { humanize, formatTokens } from '../format.js';

const REFETCH_MS = 5000;

const STATE_KIND = { running: 'ok', retrying: 'warn', paused: 'muted', input_required: 'info', idle: '' };
const PRIORITY = { 1: 'Urgent', 2: 'High', 3: 'Medium', 4: 'Low' };

/** Mounts the board into `root`. */
export function mountBoard(root, ctx) {
  const filter = h('input', { id: 'board-filter', type: 'search', placeholder: 'identifier, title, label…', dataset: { testid: 'board-filter' } });
  const reload = h('button', { type: 'button', class: 'button small', dataset: { testid: 'board-reload' } }, 'Reload');
  const status = h('p', { class: 'meta', role: 'status', dataset: { testid: 'board-status' } }, 'Loading issues…');
  const error = h('p', { class: 'banner error', role: 'alert', hidden: true, dataset: { testid: 'board-error' } });
  const columns = h('div', { class: 'board', dataset: { testid: 'board' } });
  root.append(
    h('div', { class: 'toolbar' },
      h('h1', {}, 'Board'),
      h('div', { class: 'field inline' }, h('label', { for: 'board-filter' }, 'Filter'), filter),
      reload),
    status, error, columns);

  let issues = null;
  let lastFetch = 0;
  let inFlight = false;
  let pending = false;
  let timer = null;
  let destroyed = false;

  const render = () => {
    if (!issues) return;
    const snapshot = ctx.store.get().snapshot;
    const shown = issues.filter((issue) => issueMatches(issue, filter.value));
    status.textContent = `${shown.length} of ${issues.length} issues`;
    const cols = boardColumns(shown, snapshot);
    if (cols.length === 0) {
      setChildren(columns, empty('The tracker returned no issues.', { dataset: { testid: 'board-empty' } }));
      return;
    }
    setChildren(columns, cols.map((col) => column(col, snapshot)));
  };

  const fetchNow = async () => {
    inFlight = true;
    lastFetch = Date.now();
    try {
      const list = await api.issues();
      if (destroyed) return;
      issues = Array.isArray(list) ? list : [];
      error.hidden = true;
      render();
    } catch (err) {
      if (destroyed) return;
      error.textContent = `Could not load the issues: ${describeError(err)}`;
      error.hidden = false;
      if (!issues) status.textContent = '';
    } finally {
      inFlight = false;
      if (pending && !destroyed) {
        pending = false;
        schedule();
      }
    }
  };

  // Throttle: one fetch at a time, no more often than REFETCH_MS, the last request always served.
  const schedule = () => {
    if (destroyed) return;
    if (inFlight) {
      pending = true;
      return;
    }
    if (timer) return;
    const wait = Math.max(0, lastFetch + REFETCH_MS - Date.now());
    timer = setTimeout(() => {
      timer = null;
      fetchNow();
    }, wait);
  };

  filter.addEventListener('input', render);
  reload.addEventListener('click', () => {
    if (!inFlight) fetchNow();
  });
  fetchNow();

  return {
    update(state, changed) {
      if (changed.has('snapshot')) {
        render();
        schedule();
      }
    },
    destroy() {
      destroyed = true;
      if (timer) clearTimeout(timer);
    },
  };
}

function column(col, snapshot) {
  const headingId = `col-${col.key.replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { class: ['board-column', `col-${col.kind}`], 'aria-labelledby': headingId, dataset: { testid: 'board-column', state: col.title } },
    h('h2', { id: headingId }, col.title, ' ', h('span', { class: 'count' }, String(col.issues.length))),
    col.issues.length
      ? h('ul', { class: 'cards' }, col.issues.map((issue) => h('li', {}, issueCard(issue, snapshot))))
      : empty('—'));
}

function issueCard(issue, snapshot) {
  const state = orchestratorStateOf(issue.identifier, snapshot, issue.orchestratorState);
  const why = state === 'idle' ? issue.ineligibleReason : '';
  const paused = state === 'paused' ? (snapshot?.pauseReasons?.[issue.identifier] ?? issue.pauseReason) : '';
  return h('a', { class: 'issue-card', href: issuePath(issue.identifier), dataset: { testid: 'issue-card', identifier: issue.identifier } },
    h('div', { class: 'row between' },
      h('span', { class: 'issue-id' }, issue.identifier),
      PRIORITY[issue.priority] ? h('span', { class: 'meta' }, PRIORITY[issue.priority]) : null),
    h('span', { class: 'issue-title' }, issue.title),
    h('div', { class: 'chips' },
      chip(humanize(state), STATE_KIND[state] ?? '', { dataset: { testid: 'orchestrator-state' } }),
      issue.agentProfile ? chip(`profile ${issue.agentProfile}`, 'muted') : null,
      issue.agentBackend ? chip(issue.agentBackend, 'muted') : null,
      issue.tokens ? chip(`${formatTokens(issue.tokens)} tok`, 'muted') : null,
      (issue.labels ?? []).slice(0, 3).map((label) => chip(label, 'label'))),
    why ? h('p', { class: 'why-idle', dataset: { testid: 'why-idle' } }, h('strong', {}, 'Why idle: '), why) : null,
    paused ? h('p', { class: 'why-idle' }, h('strong', {}, 'Paused: '), paused) : null,
    (issue.blockedBy ?? []).length ? h('p', { class: 'meta' }, `Blocked by ${issue.blockedBy.join(', ')}`) : null,
    issue.error ? h('p', { class: 'error-text clip', title: issue.error }, issue.error) : null);
}
