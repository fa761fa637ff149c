// Starts the dashboard: takes a `?token=` from the address, loads the first snapshot, follows the
// live /events stream (reconnecting with backoff), shows the token prompt on any 401, and mounts the
// view of the current route.

import { captureTokenFromUrl, clearToken, currentToken, setToken } from './auth.js';
import { api, describeError, onUnauthorized, streamUrl } from './api.js';
import { LiveStream } from './live.js';
import { Store, initialState, serverNow, snapshotPatch } from './store.js';
import { startRouter } from './router.js';
import { h } from './dom.js';
import { mountShell } from './views/shell.js';
import { mountTokenPrompt } from './views/token_prompt.js';
import { updateTickers } from './views/ticker.js';
import { mountOverview } from './views/overview.js';
import { mountBoard } from './views/board.js';
import { mountIssue } from './views/issue.js';
import { mountHosts } from './views/hosts.js';
import { mountSettings } from './views/settings.js';
import { mountLogs } from './views/logs.js';

const VIEWS = {
  overview: mountOverview,
  board: mountBoard,
  issue: mountIssue,
  hosts: mountHosts,
  settings: mountSettings,
  logs: mountLogs,
  'not-found': mountNotFound,
};

const TITLES = { overview: 'Overview', board: 'Board', hosts: 'Hosts', settings: 'Settings', logs: 'Logs', 'not-found': 'Not found' };

function mountNotFound(root, _ctx, params) {
  root.append(h('section', { class: 'card' },
    h('h1', {}, 'No such page'),
    h('p', {}, `Nothing lives at ${params.path}. `, h('a', { href: '/' }, 'Go to the overview'), '.')));
  return { update() {}, destroy() {} };
}

function boot() {
  captureTokenFromUrl();
  const store = new Store(initialState());
  const main = document.getElementById('main');
  const shell = mountShell();
  let route = null;
  let view = null;
  const ctx = { store, navigate: null };

  const applySnapshot = (snapshot) => {
    if (snapshot && typeof snapshot === 'object') store.set(snapshotPatch(snapshot, Date.now()));
  };

  const onSnapshot = (event) => {
    try {
      applySnapshot(JSON.parse(event.data));
    } catch {
      store.set({ bootError: 'The server sent a snapshot that is not valid JSON; waiting for the next one.' });
    }
  };
  const events = new LiveStream({
    url: () => streamUrl('/events'),
    // Frames are unnamed (`message`) per the contract; a named `snapshot` event is read the same.
    on: { message: onSnapshot, snapshot: onSnapshot },
    onStatus: (connection) => store.set({ connection }),
    // After a failure, ask the REST API what is wrong: a 401 hands over to the token prompt (the
    // EventSource cannot tell), a good answer refreshes the figures while the stream reconnects.
    probe: async () => {
      try {
        applySnapshot(await api.state());
        return 'retry';
      } catch (err) {
        return err?.status === 401 ? 'stop' : 'retry';
      }
    },
  });

  onUnauthorized((err) => {
    // A 401 for a request sent before the current token was entered says nothing about it.
    if ((err.sentToken ?? '') !== currentToken()) return;
    const hadToken = Boolean(currentToken());
    clearToken();
    events.stop();
    store.set({
      needToken: true,
      tokenError: hadToken ? 'The server rejected that token. Check ITERVOX_API_TOKEN and try again.' : '',
    });
  });

  const start = async () => {
    try {
      applySnapshot(await api.state());
    } catch (err) {
      if (err?.status === 401) return;
      store.set({ bootError: `Could not load the state: ${describeError(err)}` });
    }
    events.start();
  };

  const tokenPrompt = mountTokenPrompt((token) => {
    setToken(token);
    store.set({ needToken: false, tokenError: '', bootError: '' });
    start();
    // Views that failed with 401 load again with the token.
    if (route) showRoute(route);
  });

  const showRoute = (next) => {
    view?.destroy();
    route = next;
    main.replaceChildren();
    document.title = `${next.name === 'issue' ? next.params.id : TITLES[next.name]} · Itervox`;
    const mount = VIEWS[next.name] ?? mountNotFound;
    view = mount(main, ctx, next.params);
    const state = store.get();
    view.update(state, new Set(Object.keys(state)));
    shell.update(state, route);
    updateTickers(main, serverNow(state));
  };

  store.subscribe((state, changed) => {
    shell.update(state, route);
    tokenPrompt.update(state);
    view?.update(state, changed);
  });

  // Leaving the page closes its streams: over HTTP/1.1 a browser keeps at most six connections per
  // server, and a page kept in the back/forward cache with its streams open would hold on to them.
  window.addEventListener('pagehide', () => {
    events.stop();
    view?.destroy();
    view = null;
  });
  window.addEventListener('pageshow', (event) => {
    if (!event.persisted) return;
    if (route) showRoute(route);
    if (!store.get().needToken) start();
  });

  ctx.navigate = startRouter(showRoute);
  setInterval(() => updateTickers(document.body, serverNow(store.get())), 1000);
  tokenPrompt.update(store.get());
  start();
}

boot();
