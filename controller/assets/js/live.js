// Owns one Server-Sent-Events connection: opens an EventSource, reports its status, and after a
// failure reconnects with exponential backoff (asking a probe first whether to try again at all).

/**
 * Delay before reconnect attempt `attempt` (0-based): minMs doubled per attempt, capped at maxMs,
 * spread by ±jitter so many tabs do not reconnect in lockstep. Pure: `random` is a parameter.
 */
export function backoffDelay(attempt, { minMs = 1000, maxMs = 30000, jitter = 0.2, random = Math.random } = {}) {
  const base = Math.min(maxMs, minMs * 2 ** Math.max(0, Math.min(attempt, 30)));
  const spread = base * jitter;
  const delay = base - spread + random() * 2 * spread;
  return Math.round(Math.min(maxMs, Math.max(minMs, delay)));
}

/**
 * A self-healing EventSource.
 *
 * - `url()` is called for every (re)connection, so a token typed later is picked up.
 * - `on` maps SSE event names ('message', 'log', 'gap', …) to handlers.
 * - `onStatus({state, attempt, retryAt})` with state 'connecting' | 'open' | 'down' | 'stopped'.
 * - `probe()` runs after a failure, before the next attempt; resolving to 'stop' ends the stream
 *   (e.g. the API answers 401 and the token prompt takes over).
 * - `browserRetry`: let EventSource retry by itself while it can (it then resends Last-Event-ID,
 *   which is how the log stream resumes); only a hard failure falls back to our backoff.
 */
export class LiveStream {
  constructor({ url, on = {}, onStatus = () => {}, probe = null, browserRetry = false, backoff = {} }) {
    this.url = url;
    this.on = on;
    this.onStatus = onStatus;
    this.probe = probe;
    this.browserRetry = browserRetry;
    this.backoff = backoff;
    this.source = null;
    this.timer = null;
    this.running = false;
    this.attempt = 0;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    this.open();
  }

  stop() {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.source) this.source.close();
    this.source = null;
    this.onStatus({ state: 'stopped', attempt: this.attempt, retryAt: 0 });
  }

  /** Drops the current connection and reconnects at once (e.g. after a new token). */
  restart() {
    this.stop();
    this.start();
  }

  open() {
    const source = new EventSource(this.url());
    this.source = source;
    this.onStatus({ state: 'connecting', attempt: this.attempt, retryAt: 0 });
    source.onopen = () => {
      if (this.source !== source) return;
      this.onStatus({ state: 'open', attempt: this.attempt, retryAt: 0 });
    };
    for (const [name, handler] of Object.entries(this.on)) {
      source.addEventListener(name, (event) => {
        if (this.source !== source) return;
        // A delivered event proves the connection works: the next failure starts a fresh backoff.
        this.attempt = 0;
        handler(event);
      });
    }
    source.onerror = () => {
      if (this.source !== source) return;
      if (this.browserRetry && source.readyState === EventSource.CONNECTING) {
        this.onStatus({ state: 'down', attempt: this.attempt, retryAt: 0 });
        return;
      }
      source.close();
      this.source = null;
      this.scheduleReconnect();
    };
  }

  async scheduleReconnect() {
    const delay = backoffDelay(this.attempt, this.backoff);
    this.attempt += 1;
    this.onStatus({ state: 'down', attempt: this.attempt, retryAt: Date.now() + delay });
    if (this.probe) {
      let verdict = 'retry';
      try {
        verdict = await this.probe();
      } catch {
        verdict = 'retry';
      }
      if (!this.running) return;
      if (verdict === 'stop') {
        this.stop();
        return;
      }
    }
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.running) this.open();
    }, delay);
  }
}
