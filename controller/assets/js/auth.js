// Owns the API bearer token: taken once from `?token=` in the page address (then removed from the
// address bar), otherwise typed into the token prompt; kept in sessionStorage for this tab only.

const KEY = 'itervox.apiToken';

/** The stored token, or '' when there is none (or storage is unavailable). */
export function getToken() {
  try {
    return window.sessionStorage.getItem(KEY) ?? '';
  } catch {
    return '';
  }
}

/** Stores a token for this tab. */
export function setToken(token) {
  try {
    window.sessionStorage.setItem(KEY, String(token));
  } catch {
    // Storage disabled: the token lives only as long as the page (see memoryToken).
  }
  memoryToken = String(token);
}

/** Forgets the token. */
export function clearToken() {
  try {
    window.sessionStorage.removeItem(KEY);
  } catch {
    // Nothing stored.
  }
  memoryToken = '';
}

// Fallback when sessionStorage throws (some privacy modes): keep the token in memory.
let memoryToken = '';

/** The token to send: sessionStorage first, the in-memory fallback second. */
export function currentToken() {
  return getToken() || memoryToken;
}

/**
 * Moves `?token=` from the page address into storage and strips it from the address bar (so it is
 * not bookmarked, shared or kept in history). Returns true when the address carried a token.
 */
export function captureTokenFromUrl(location = window.location, history = window.history) {
  const url = new URL(location.href);
  if (!url.searchParams.has('token')) return false;
  const token = url.searchParams.get('token') ?? '';
  if (token) setToken(token);
  url.searchParams.delete('token');
  history.replaceState(history.state, '', `${url.pathname}${url.search}${url.hash}`);
  return token !== '';
}
