// The daemon log page: a live tail of the controller's own log file (SSE /logs), optionally
// filtered to one issue (`?identifier=`, from GET /logs/identifiers), and clearing every issue's
// log buffer (DELETE /logs).

import { h, card, setChildren, field } from '../dom.js';
import { api, describeError, streamUrl } from '../api.js';
import { act, confirmAction } from './feedback.js';
import { LiveStream } from '../live.js';
import { formatClock } from '../format.js';

const MAX_LINES = 2000;

/**
 * One daemon log line for display: JSON lines (tracing's JSON format) become
 * {time, level, message, fields}; anything else is shown as it came.
 */
export function parseDaemonLine(data) {
  const text = String(data ?? '');
  let value = null;
  try {
    value = JSON.parse(text);
  } catch {
    value = null;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    return { time: '', level: '', message: text, fields: '' };
  }
  const nested = value.fields && typeof value.fields === 'object' ? value.fields : {};
  const message = value.message ?? value.msg ?? nested.message ?? '';
  const skip = new Set(['timestamp', 'time', 'ts', 'level', 'message', 'msg', 'fields']);
  const rest = { ...value, ...nested };
  const fields = Object.entries(rest)
    .filter(([key]) => !skip.has(key))
    .map(([key, v]) => `${key}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return {
    time: value.timestamp ?? value.time ?? value.ts ?? '',
    level: String(value.level ?? '').toLowerCase(),
    message: String(message),
    fields,
  };
}

/** Mounts the daemon log page into `root`. */
export function mountLogs(root) {
  const filter = h('select', { dataset: { testid: 'daemon-log-filter' } }, h('option', { value: '' }, 'All of the daemon log'));
  const follow = h('input', { type: 'checkbox', id: 'daemon-log-follow', checked: true });
  const status = h('span', { class: 'pill', role: 'status', dataset: { testid: 'daemon-log-status' } }, 'Connecting…');
  const list = h('ol', { class: 'log', dataset: { testid: 'daemon-log' }, 'aria-label': 'Daemon log', tabindex: '0' });
  const clearView = h('button', { type: 'button', class: 'button small' }, 'Clear view');
  const clearAll = h('button', { type: 'button', class: 'button small danger', dataset: { testid: 'clear-all-logs' } }, 'Clear every issue log');
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });

  root.append(
    h('h1', {}, 'Logs'),
    card('Daemon log', { id: 'daemon-log-card' },
      h('div', { class: 'row wrap' },
        field('daemon-log-filter', 'Issue', filter),
        status,
        h('label', { class: 'check', for: 'daemon-log-follow' }, follow, ' Follow'),
        clearView,
        clearAll),
      error,
      list));

  let stream = null;
  const append = (event) => {
    const line = parseDaemonLine(event.data);
    const level = ['error', 'warn'].includes(line.level) ? line.level : 'info';
    while (list.children.length >= MAX_LINES) list.firstElementChild.remove();
    list.appendChild(h('li', { class: ['log-line', `level-${level}`], dataset: { testid: 'daemon-log-line' } },
      line.time ? h('time', { datetime: line.time }, formatClock(line.time)) : null,
      line.level ? h('span', { class: 'log-event' }, line.level) : null,
      h('span', { class: 'log-message' }, line.message, line.fields ? h('span', { class: 'meta' }, ` ${line.fields}`) : null)));
    if (follow.checked) list.scrollTop = list.scrollHeight;
  };
  const connect = () => {
    stream?.stop();
    list.replaceChildren();
    const id = filter.value;
    stream = new LiveStream({
      url: () => streamUrl(id ? `/logs?identifier=${encodeURIComponent(id)}` : '/logs'),
      browserRetry: true,
      on: { message: append, log: append },
      onStatus: ({ state }) => {
        const labels = { connecting: 'Connecting…', open: 'Following live', down: 'Reconnecting…', stopped: 'Stopped' };
        status.textContent = labels[state] ?? state;
        status.dataset.state = state;
      },
    });
    stream.start();
  };

  api.logIdentifiers().then((ids) => {
    const current = filter.value;
    setChildren(filter, h('option', { value: '' }, 'All of the daemon log'),
      (Array.isArray(ids) ? ids : []).map((id) => h('option', { value: id }, id)));
    filter.value = current;
  }).catch((err) => {
    error.textContent = `Could not list the issues with logs: ${describeError(err)}`;
    error.hidden = false;
  });
  filter.addEventListener('change', connect);
  clearView.addEventListener('click', () => list.replaceChildren());
  clearAll.addEventListener('click', async () => {
    const { ok } = await confirmAction({
      title: 'Clear every issue log?',
      text: 'The server forgets the buffered log lines of every issue. The daemon log file is kept.',
      okLabel: 'Clear all',
    });
    if (ok) await act(clearAll, () => api.clearAllLogs(), 'Every issue log cleared');
  });
  connect();

  return {
    update() {},
    destroy() {
      stream?.stop();
    },
  };
}
