// The overview page: headline figures (counts, capacity, tokens, cost), issues waiting for input,
// running sessions, the retry queue, paused issues and the run history, all from the live snapshot.

import { h, card, table, empty, chip, setChildren } from '../dom.js';
import { api } from '../api.js';
import { act, confirmAction } from './feedback.js';
import { elapsed, countdown } from './ticker.js';
import { ReplyBoxes } from './reply_box.js';
import { issuePath } from '../router.js';
import { serverNow } from '../store.js';
import {
  formatTokens, formatCost, formatDuration, formatTimestamp, formatRelative, parseTime, humanize,
} from '../format.js';
import {
  capacityInUse, runningSince, sortHistory, sortRetries, pauseReasonOf,
} from '../derive.js';

/** Mounts the overview into `root`. */
export function mountOverview(root) {
  const stats = h('div', { class: 'stats', dataset: { testid: 'stats' } });
  const replies = h('div', { class: 'stack' });
  const inputCard = card('Waiting for your input', { id: 'input-required', dataset: { testid: 'input-required' }, hidden: true }, replies);
  const running = h('div');
  const retrying = h('div');
  const paused = h('div');
  const history = h('div');
  root.append(
    h('h1', { class: 'visually-hidden' }, 'Overview'),
    stats,
    inputCard,
    card('Running sessions', { id: 'running', dataset: { testid: 'running-sessions' } }, running),
    h('div', { class: 'grid-2' },
      card('Retry queue', { id: 'retry-queue', dataset: { testid: 'retry-queue' } }, retrying),
      card('Paused', { id: 'paused', dataset: { testid: 'paused' } }, paused)),
    card('History', { id: 'history', dataset: { testid: 'history' } }, history));
  const replyBoxes = new ReplyBoxes(replies);

  return {
    update(state, changed) {
      if (!changed.has('snapshot') && !changed.has('clockOffsetMs')) return;
      const snapshot = state.snapshot;
      if (!snapshot) {
        setChildren(stats, empty('Waiting for the first snapshot from the server…', { dataset: { testid: 'no-snapshot' } }));
        return;
      }
      const now = serverNow(state);
      renderStats(stats, snapshot, now);
      const waiting = snapshot.inputRequired ?? [];
      inputCard.hidden = waiting.length === 0;
      replyBoxes.update(waiting);
      setChildren(running, runningTable(snapshot, now));
      setChildren(retrying, retryTable(snapshot, now));
      setChildren(paused, pausedTable(snapshot));
      setChildren(history, historyTable(snapshot));
    },
    destroy() {},
  };
}

function stat(label, value, testid, extra = null) {
  return h('div', { class: 'stat', dataset: { testid } },
    h('span', { class: 'stat-label' }, label),
    h('span', { class: 'stat-value' }, value),
    extra);
}

function renderStats(el, s, now) {
  const cap = capacityInUse(s);
  const totals = s.totals;
  const rate = s.rateLimits;
  setChildren(el,
    stat('Running', String(s.counts?.running ?? 0), 'stat-running'),
    stat('Capacity in use', `${cap.running} / ${cap.max}`, 'stat-capacity',
      h('meter', { min: 0, max: Math.max(cap.max, 1), value: cap.running, 'aria-label': 'Agents running out of the maximum' })),
    stat('Retrying', String(s.counts?.retrying ?? 0), 'stat-retrying'),
    stat('Paused', String(s.counts?.paused ?? 0), 'stat-paused'),
    stat('Waiting for input', String((s.inputRequired ?? []).length), 'stat-input'),
    stat('Tokens in / out',
      totals ? `${formatTokens(totals.inputTokens)} / ${formatTokens(totals.outputTokens)}` : '—', 'stat-tokens'),
    stat('Estimated cost', formatCost(totals?.costUsdEstimated ?? null), 'stat-cost'),
    rate
      ? stat('Tracker budget',
        rate.requestsRemaining != null && rate.requestsLimit != null ? `${rate.requestsRemaining} / ${rate.requestsLimit}` : '—',
        'stat-rate', rate.requestsReset ? h('small', {}, `resets ${formatRelative(parseTime(rate.requestsReset), now)}`) : null)
      : null,
    s.agentMode ? stat('Agent mode', s.agentMode, 'stat-mode') : null);
}

function issueCell(identifier, title, extra = null) {
  return h('td', { class: 'issue-cell' },
    h('a', { href: issuePath(identifier), class: 'issue-id' }, identifier),
    title ? h('span', { class: 'issue-title' }, title) : null,
    extra);
}

function actionButton(label, testid, onClick, kind = '') {
  const button = h('button', { type: 'button', class: ['button', 'small', kind], dataset: { testid } }, label);
  button.addEventListener('click', () => onClick(button));
  return button;
}

/** Cancel (pause) a running issue. */
export function cancelButton(id) {
  return actionButton('Cancel', 'action-cancel', (b) =>
    act(b, () => api.cancel(id), `${id} cancelled: paused until resumed`));
}

/** Resume a paused issue. */
export function resumeButton(id) {
  return actionButton('Resume', 'action-resume', (b) =>
    act(b, () => api.resume(id), `${id} resumed: eligible on the next poll`), 'primary');
}

/** Hard-stop an issue (after confirmation). */
export function terminateButton(id) {
  return actionButton('Terminate', 'action-terminate', async (b) => {
    const { ok } = await confirmAction({
      title: `Terminate ${id}?`,
      text: 'This stops the agent at once, releases the claim and moves the issue back to an active state, so it may be dispatched again right away.',
      okLabel: 'Terminate',
    });
    if (ok) await act(b, () => api.terminate(id), `${id} terminated`);
  }, 'danger');
}

function runningTable(s, now) {
  const rows = s.running ?? [];
  if (rows.length === 0) return empty('No agent is running.', { dataset: { testid: 'running-empty' } });
  const generated = parseTime(s.generatedAt);
  return table('Running sessions',
    ['Issue', 'Host', 'Backend', 'Profile', 'Turn', 'Last event', 'Elapsed', 'Tokens', 'Actions'],
    rows.map((r) => h('tr', { dataset: { testid: 'running-row', identifier: r.identifier } },
      issueCell(r.identifier, r.title, r.kind === 'reviewer' ? chip('review', 'info') : null),
      h('td', { dataset: { testid: 'running-host' } }, r.workerHost || 'local'),
      h('td', {}, r.backend || '—'),
      h('td', {}, r.profile || '—'),
      h('td', { class: 'num' }, String(r.turnCount ?? 0)),
      h('td', { class: 'last-event' },
        r.lastEvent ? chip(r.lastEvent, 'muted') : null,
        r.lastMessage ? h('span', { class: 'clip', title: r.lastMessage }, ` ${r.lastMessage}`) : (r.lastEvent ? null : '—'),
        r.lastEventAt ? h('small', { class: 'meta block' }, formatRelative(parseTime(r.lastEventAt), now)) : null),
      h('td', { class: 'num' }, elapsed(runningSince(r, generated), now, { dataset: { testid: 'running-elapsed' } })),
      h('td', { class: 'num', title: `${r.inputTokens ?? 0} in / ${r.outputTokens ?? 0} out` }, formatTokens(r.tokens ?? 0)),
      h('td', { class: 'actions' }, cancelButton(r.identifier), terminateButton(r.identifier)))));
}

function retryTable(s, now) {
  const rows = sortRetries(s.retrying);
  if (rows.length === 0) return empty('Nothing is waiting to retry.', { dataset: { testid: 'retry-empty' } });
  return table('Retry queue', ['Issue', 'Attempt', 'Due', 'Error'],
    rows.map((r) => h('tr', { dataset: { testid: 'retry-row', identifier: r.identifier } },
      issueCell(r.identifier, ''),
      h('td', { class: 'num' }, s.maxRetries ? `${r.attempt} / ${s.maxRetries}` : String(r.attempt)),
      h('td', { title: formatTimestamp(r.dueAt) }, countdown(parseTime(r.dueAt), now, { dataset: { testid: 'retry-due' } })),
      h('td', { class: r.error ? 'error-text' : 'none' }, r.error || '—'))));
}

function pausedTable(s) {
  const ids = s.paused ?? [];
  if (ids.length === 0) return empty('No issue is paused.', { dataset: { testid: 'paused-empty' } });
  return table('Paused issues', ['Issue', 'Reason', 'Actions'],
    ids.map((id) => h('tr', { dataset: { testid: 'paused-row', identifier: id } },
      issueCell(id, ''),
      h('td', { dataset: { testid: 'pause-reason' } }, pauseReasonOf(id, s) || '—'),
      h('td', { class: 'actions' }, resumeButton(id), terminateButton(id)))));
}

const STATUS_KIND = {
  succeeded: 'ok', failed: 'error', cancelled: 'muted', stalled: 'warn', input_required: 'info', lost: 'warn',
};

function historyTable(s) {
  const rows = sortHistory(s.history);
  if (rows.length === 0) return empty('No run has finished yet.', { dataset: { testid: 'history-empty' } });
  return table('Run history, newest first',
    ['Issue', 'Status', 'Host', 'Backend', 'Turns', 'Tokens', 'Duration', 'Finished', 'Error'],
    rows.map((r) => h('tr', { dataset: { testid: 'history-row', identifier: r.identifier } },
      issueCell(r.identifier, r.title, r.kind === 'reviewer' ? chip('review', 'info') : null),
      h('td', {}, r.status ? chip(humanize(r.status), STATUS_KIND[r.status] ?? '') : '—'),
      h('td', {}, r.workerHost || 'local'),
      h('td', {}, r.backend || '—'),
      h('td', { class: 'num' }, String(r.turnCount ?? 0)),
      h('td', { class: 'num', title: `${r.inputTokens ?? 0} in / ${r.outputTokens ?? 0} out` }, formatTokens(r.tokens ?? 0)),
      h('td', { class: 'num' }, formatDuration(r.elapsedMs)),
      h('td', {}, formatTimestamp(r.finishedAt)),
      h('td', { class: r.error ? 'error-text' : 'none' }, r.error ? h('span', { class: 'clip', title: r.error }, r.error) : '—'))));
}
