// The /api/v1 client: every REST call of the contract, the bearer token on each request, API errors
// turned into readable ApiError messages, and the URLs of the SSE streams (token as `?token=`).

import { currentToken } from './auth.js';

export const API_BASE = '/api/v1';

/** A failed API call: HTTP status (0 when the server could not be reached), code, message, field. */
export class ApiError extends Error {
  constructor(status, code, message, field = '', retryAfter = '') {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }

  /** One readable line: the server's message, then the status, code and field in brackets. */
  describe() {
    const parts = [];
    if (this.status) parts.push(`HTTP ${this.status}`);
    if (this.code && this.code !== 'network') parts.push(this.code);
    if (this.field) parts.push(`field: ${this.field}`);
    if (this.retryAfter) parts.push(`retry after ${this.retryAfter} s`);
    return parts.length ? `${this.message} (${parts.join(', ')})` : this.message;
  }
}

/** A readable message for anything a call may throw. */
export function describeError(err) {
  if (err instanceof ApiError) return err.describe();
  if (err && typeof err.message === 'string') return err.message;
  return String(err);
}

/**
 * Reads an error answer: the `{"error":{"code","message","field"}}` envelope when present,
 * otherwise a message built from the status and the start of the body. Pure, for tests.
 */
export function parseErrorBody(status, statusText, bodyText) {
  let parsed = null;
  try {
    parsed = bodyText ? JSON.parse(bodyText) : null;
  } catch {
    parsed = null;
  }
  const env = parsed && typeof parsed === 'object' ? parsed.error : null;
  if (env && typeof env === 'object' && typeof env.message === 'string' && env.message) {
    return { code: String(env.code ?? ''), message: env.message, field: String(env.field ?? '') };
  }
  if (typeof env === 'string' && env) return { code: '', message: env, field: '' };
  const snippet = String(bodyText ?? '').replace(/\s+/g, ' ').trim().slice(0, 200);
  const reason = statusText || defaultReason(status);
  return {
    code: '',
    message: snippet ? `${reason}: ${snippet}` : `The server answered ${status} ${reason}`.trim(),
    field: '',
  };
}

function defaultReason(status) {
  return {
    400: 'Bad request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not found', 405: 'Method not allowed',
    409: 'Conflict', 413: 'Payload too large', 500: 'Internal server error', 501: 'Not supported',
    502: 'Bad gateway', 503: 'Service unavailable', 504: 'Gateway timeout',
  }[status] ?? '';
}

const unauthorizedListeners = new Set();

/** Calls `fn(error)` whenever any API call answers 401. Returns an unsubscribe function. */
export function onUnauthorized(fn) {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

/** One API call. Resolves to the parsed JSON body (null when empty); rejects with ApiError. */
export async function request(method, path, body = undefined, { signal } = {}) {
  const headers = { Accept: 'application/json' };
  const token = currentToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, cache: 'no-store', signal };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`${API_BASE}${path}`, init);
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', `Cannot reach the Itervox server for ${method} ${path}`);
  }
  let text = '';
  try {
    text = await response.text();
  } catch {
    text = '';
  }
  if (!response.ok) {
    const { code, message, field } = parseErrorBody(response.status, response.statusText, text);
    const error = new ApiError(response.status, code, message, field, response.headers.get('Retry-After') ?? '');
    // Which token this request carried, so a late 401 from before a new token was entered is
    // recognisably stale.
    error.sentToken = token;
    if (response.status === 401) for (const fn of unauthorizedListeners) fn(error);
    throw error;
  }
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(response.status, 'bad_response', `The answer to ${method} ${path} is not JSON`);
  }
}

const seg = (s) => encodeURIComponent(String(s));

/**
 * The URL of an SSE stream. EventSource cannot send headers, so the token rides in `?token=`
 * (which the API accepts on SSE routes).
 */
export function streamUrl(path, token = currentToken()) {
  const url = new URL(`${API_BASE}${path}`, window.location.origin);
  if (token) url.searchParams.set('token', token);
  return `${url.pathname}${url.search}`;
}

/** The routes of the contract (API.md), one function each. */
export const api = {
  state: () => request('GET', '/state'),
  refresh: () => request('POST', '/refresh', {}),
  issues: () => request('GET', '/issues'),
  issue: (id) => request('GET', `/issues/${seg(id)}`),
  cancel: (id) => request('POST', `/issues/${seg(id)}/cancel`),
  resume: (id) => request('POST', `/issues/${seg(id)}/resume`),
  terminate: (id) => request('POST', `/issues/${seg(id)}/terminate`),
  reanalyze: (id) => request('POST', `/issues/${seg(id)}/reanalyze`),
  aiReview: (id) => request('POST', `/issues/${seg(id)}/ai-review`),
  setProfile: (id, profile) => request('POST', `/issues/${seg(id)}/profile`, { profile }),
  setBackend: (id, backend) => request('POST', `/issues/${seg(id)}/backend`, { backend }),
  provideInput: (id, message) => request('POST', `/issues/${seg(id)}/provide-input`, { message }),
  dismissInput: (id) => request('POST', `/issues/${seg(id)}/dismiss-input`),
  logs: (id) => request('GET', `/issues/${seg(id)}/logs`),
  clearLogs: (id) => request('DELETE', `/issues/${seg(id)}/logs`),
  sublogs: (id) => request('GET', `/issues/${seg(id)}/sublogs`),
  clearSublogs: (id) => request('DELETE', `/issues/${seg(id)}/sublogs`),
  clearSublog: (id, sessionId) => request('DELETE', `/issues/${seg(id)}/sublogs/${seg(sessionId)}`),
  logIdentifiers: () => request('GET', '/logs/identifiers'),
  clearAllLogs: () => request('DELETE', '/logs'),
  models: () => request('GET', '/settings/models'),
  setWorkers: (workers) => request('POST', '/settings/workers', { workers }),
  changeWorkers: (delta) => request('POST', '/settings/workers', { delta }),
  setAgentMode: (mode) => request('POST', '/settings/agent-mode', { mode }),
  setTrackerStates: (body) => request('PUT', '/settings/tracker/states', body),
  hosts: () => request('GET', '/ssh-hosts'),
  addHost: (host, description) => request('POST', '/ssh-hosts', { host, description }),
  removeHost: (host, drain) => request('DELETE', `/ssh-hosts/${seg(host)}?drain=${drain ? 'true' : 'false'}`),
  setDispatchStrategy: (strategy) => request('PUT', '/settings/dispatch-strategy', { strategy }),
  setAutoClear: (enabled) => request('POST', '/settings/workspace/auto-clear', { enabled }),
  setInlineInput: (enabled) => request('POST', '/settings/inline-input', { enabled }),
  profiles: () => request('GET', '/settings/profiles'),
  saveProfile: (name, def) => request('PUT', `/settings/profiles/${seg(name)}`, def),
  deleteProfile: (name) => request('DELETE', `/settings/profiles/${seg(name)}`),
  reviewer: () => request('GET', '/settings/reviewer'),
  saveReviewer: (profile, autoReview) => request('PUT', '/settings/reviewer', { profile, autoReview }),
  projects: () => request('GET', '/projects'),
  projectFilter: () => request('GET', '/projects/filter'),
  setProjectFilter: (slugs) => request('PUT', '/projects/filter', { slugs }),
  clearWorkspaces: () => request('DELETE', '/workspaces'),
};
