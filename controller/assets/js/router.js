// Client-side routes: maps the address bar's path to a view and follows same-origin links without a
// page load. The server answers every such path with index.html, so deep links and reloads work.

/** The route for a path: { name, params }. Pure. */
export function matchRoute(pathname) {
  const path = pathname.replace(/\/+$/, '') || '/';
  if (path === '/') return { name: 'overview', params: {} };
  if (path === '/board') return { name: 'board', params: {} };
  if (path === '/hosts') return { name: 'hosts', params: {} };
  if (path === '/settings') return { name: 'settings', params: {} };
  if (path === '/logs') return { name: 'logs', params: {} };
  const issue = /^\/issues\/([^/]+)$/.exec(path);
  if (issue) {
    let id = issue[1];
    try {
      id = decodeURIComponent(id);
    } catch {
      // Keep the raw segment.
    }
    return { name: 'issue', params: { id } };
  }
  return { name: 'not-found', params: { path } };
}

/** The dashboard path of an issue's detail page. */
export function issuePath(identifier) {
  return `/issues/${encodeURIComponent(identifier)}`;
}

/** Watches navigation and calls `onRoute(route)`; returns `navigate(path)`. */
export function startRouter(onRoute) {
  const navigate = (path, { replace = false } = {}) => {
    if (path !== `${window.location.pathname}${window.location.search}`) {
      if (replace) window.history.replaceState(null, '', path);
      else window.history.pushState(null, '', path);
    }
    onRoute(matchRoute(window.location.pathname));
  };
  document.addEventListener('click', (event) => {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const link = event.target instanceof Element ? event.target.closest('a[href]') : null;
    if (!link || link.target || link.hasAttribute('download')) return;
    const url = new URL(link.href, window.location.href);
    if (url.origin !== window.location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/assets/')) return;
    event.preventDefault();
    navigate(`${url.pathname}${url.search}`);
  });
  window.addEventListener('popstate', () => onRoute(matchRoute(window.location.pathname)));
  onRoute(matchRoute(window.location.pathname));
  return navigate;
}
