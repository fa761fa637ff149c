// The page frame around every view: navigation highlight, the live-connection pill and banner, the
// configuration and tracker error banners, mode badges, and the "Poll now" button.

import { h, chip, setChildren } from '../dom.js';
import { api } from '../api.js';
import { act } from './feedback.js';
import { countdown } from './ticker.js';
import { formatTimestamp, formatRelative, parseTime, humanize } from '../format.js';
import { serverNow } from '../store.js';

const byId = (id) => document.getElementById(id);

/** Wires the static frame once; returns `update(state, route)`. */
export function mountShell() {
  const refresh = byId('refresh-button');
  refresh.addEventListener('click', () =>
    act(refresh, () => api.refresh(), (r) => (r?.coalesced ? 'A poll was already queued' : 'Poll queued')));
  return { update };
}

function update(state, route) {
  for (const link of document.querySelectorAll('[data-nav]')) {
    const active = link.dataset.nav === route?.name || (route?.name === 'issue' && link.dataset.nav === 'board');
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  renderConnection(state);
  renderBanners(state);
  renderBadges(state.snapshot);
}

function renderConnection(state) {
  const pill = byId('connection-status');
  const banner = byId('connection-banner');
  const { state: conn, attempt, retryAt } = state.connection;
  const labels = { open: 'Live', connecting: 'Connecting…', down: 'Reconnecting…', stopped: 'Offline' };
  const label = state.needToken ? 'Token needed' : labels[conn] ?? conn;
  pill.textContent = label;
  pill.dataset.state = state.needToken ? 'locked' : conn;

  const down = !state.needToken && conn === 'down';
  banner.hidden = !down;
  if (down) {
    const now = serverNow(state);
    const parts = [h('strong', {}, 'Disconnected — reconnecting.'), ' '];
    if (retryAt) {
      parts.push('Next attempt ', countdown(retryAt + (state.clockOffsetMs || 0), now), ` (attempt ${attempt}). `);
    }
    const at = parseTime(state.snapshot?.generatedAt);
    parts.push(Number.isNaN(at)
      ? 'No data received yet.'
      : `The figures below are from ${formatTimestamp(state.snapshot.generatedAt)} and may be stale.`);
    setChildren(banner, parts);
  }
}

function renderBanners(state) {
  const snapshot = state.snapshot;
  const config = byId('config-invalid-banner');
  const invalid = snapshot?.configInvalid;
  config.hidden = !invalid;
  if (invalid) {
    setChildren(config,
      h('strong', {}, 'WORKFLOW.md is invalid: '),
      h('code', {}, invalid.path ?? ''), ' — ', invalid.error ?? '',
      '. Itervox keeps running with the last valid configuration until the file is fixed.');
  }

  const tracker = byId('tracker-error-banner');
  const err = snapshot?.lastTrackerError;
  tracker.hidden = !err;
  if (err) {
    const failing = (err.consecutiveFailures ?? 0) > 0;
    tracker.className = `banner ${failing ? 'error' : 'warn'}`;
    const now = serverNow(state);
    const parts = [
      h('strong', {}, failing ? 'Tracker error: ' : 'Last tracker error (recovered): '),
      err.message ?? '',
      ` — ${humanize(err.kind)} during ${humanize(err.op)}`,
      failing ? `, ${err.consecutiveFailures} consecutive failure${err.consecutiveFailures === 1 ? '' : 's'}` : '',
      `, ${formatRelative(parseTime(err.at), now)}.`,
    ];
    if (err.resetAt) parts.push(` Rate limit resets ${formatRelative(parseTime(err.resetAt), now)}.`);
    setChildren(tracker, parts);
  }

  const boot = byId('boot-error-banner');
  boot.hidden = !state.bootError;
  boot.textContent = state.bootError || '';
}

function renderBadges(snapshot) {
  const badges = byId('badges');
  setChildren(badges,
    snapshot?.demoMode ? chip('demo', 'info', { dataset: { testid: 'badge-demo' } }) : null,
    snapshot?.dryRun ? chip('dry run', 'warn', { dataset: { testid: 'badge-dry-run' }, title: 'ITERVOX_DRY_RUN=1: nothing is dispatched' }) : null,
    snapshot?.draining ? chip('draining', 'warn', { dataset: { testid: 'badge-draining' } }) : null,
    snapshot?.trackerKind ? chip(snapshot.trackerKind, '', { title: 'Tracker' }) : null);
}
