// Live-updating times: elements carrying `data-since` (elapsed counter) or `data-until` (countdown)
// in server-clock milliseconds are refreshed every second without re-rendering their view.

import { formatDuration, formatRelative } from '../format.js';
import { h } from '../dom.js';

/** An element showing the time elapsed since `sinceMs` (server clock). */
export function elapsed(sinceMs, nowMs, attrs = {}) {
  return h('span', { ...attrs, class: 'tick', dataset: { ...attrs.dataset, since: sinceMs } },
    Number.isFinite(sinceMs) ? formatDuration(nowMs - sinceMs) : '—');
}

/** An element showing a countdown to (or time since) `untilMs` (server clock). */
export function countdown(untilMs, nowMs, attrs = {}) {
  return h('span', { ...attrs, class: 'tick', dataset: { ...attrs.dataset, until: untilMs } },
    formatRelative(untilMs, nowMs));
}

/** Refreshes every ticking element under `root` for the server time `nowMs`. */
export function updateTickers(root, nowMs) {
  for (const el of root.querySelectorAll('[data-since]')) {
    const since = Number(el.dataset.since);
    el.textContent = Number.isFinite(since) ? formatDuration(nowMs - since) : '—';
  }
  for (const el of root.querySelectorAll('[data-until]')) {
    el.textContent = formatRelative(Number(el.dataset.until), nowMs);
  }
}
