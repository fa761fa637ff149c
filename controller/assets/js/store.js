// Owns the dashboard's client state (the latest StateSnapshot, the live connection's status, the
// token prompt) and tells subscribers which keys changed.

import { parseTime } from './format.js';

/** A tiny observable state container. */
export class Store {
  constructor(initial) {
    this.state = { ...initial };
    this.listeners = new Set();
  }

  get() {
    return this.state;
  }

  /** Merges `patch` into the state and notifies subscribers with the changed keys. */
  set(patch) {
    const changed = new Set();
    for (const [key, value] of Object.entries(patch)) {
      if (this.state[key] !== value) changed.add(key);
    }
    if (changed.size === 0) return;
    this.state = { ...this.state, ...patch };
    for (const fn of [...this.listeners]) fn(this.state, changed);
  }

  /** Calls `fn(state, changedKeys)` on every change; returns the unsubscribe function. */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

/** The dashboard's initial state. */
export function initialState() {
  return {
    snapshot: null,
    // Server clock minus client clock, from the last snapshot's generatedAt.
    clockOffsetMs: 0,
    // { state: 'connecting'|'open'|'down'|'stopped', attempt, retryAt }
    connection: { state: 'connecting', attempt: 0, retryAt: 0 },
    needToken: false,
    tokenError: '',
    bootError: '',
    // GET /ssh-hosts answer after a host change, until the next snapshot supersedes it.
    hostsOverride: null,
  };
}

/** The state patch for a freshly received snapshot, measured against the client clock `nowMs`. */
export function snapshotPatch(snapshot, nowMs) {
  const generated = parseTime(snapshot?.generatedAt);
  return {
    snapshot,
    clockOffsetMs: Number.isNaN(generated) ? 0 : generated - nowMs,
    hostsOverride: null,
    bootError: '',
  };
}

/** The current time on the server's clock. */
export function serverNow(state, clientNowMs = Date.now()) {
  return clientNowMs + (state.clockOffsetMs || 0);
}
