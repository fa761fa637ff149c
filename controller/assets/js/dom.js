// Builds DOM nodes. Text from the API (issue bodies, agent output, error messages) only ever goes
// in as text nodes, never as HTML, so nothing a tracker or an agent writes can run in the page.

/**
 * `h('button', { class: 'x', on: { click: fn }, dataset: { testid: 'y' } }, 'Label', child, …)`.
 *
 * Attribute rules: `class`, `text`, `on`, `dataset`; boolean `true` sets an empty attribute and
 * `false`/`null`/`undefined` omit it; `value`, `checked`, `selected`, `disabled`, `hidden`,
 * `indeterminate` are set as properties. Children: nodes, strings, numbers, arrays; null/false skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'on') for (const [name, fn] of Object.entries(value)) el.addEventListener(name, fn);
    else if (key === 'dataset') for (const [name, v] of Object.entries(value)) el.dataset[name] = String(v);
    else if (['value', 'checked', 'selected', 'disabled', 'hidden', 'indeterminate'].includes(key)) el[key] = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function setChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A `<label>` + control pair in a field wrapper; the control gets `id`. */
export function field(id, labelText, control, hint = '') {
  control.id = id;
  return h('div', { class: 'field' },
    h('label', { for: id }, labelText),
    control,
    hint ? h('small', { class: 'hint' }, hint) : null);
}

/** A titled section card. */
export function card(title, attrs = {}, ...children) {
  const headingId = `${attrs.id ?? `card-${Math.random().toString(36).slice(2)}`}-title`;
  return h('section', { class: 'card', 'aria-labelledby': headingId, ...attrs },
    h('h2', { id: headingId }, title),
    ...children);
}

/** A scrollable table with a header row; `rows` are `<tr>` nodes. */
export function table(label, headers, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', { 'aria-label': label, ...attrs },
      h('thead', {}, h('tr', {}, headers.map((title) => h('th', { scope: 'col' }, title)))),
      h('tbody', {}, rows)));
}

/** The "nothing here" line. */
export function empty(text, attrs = {}) {
  return h('p', { class: 'empty', ...attrs }, text);
}

/** A status chip; `kind` picks the colour, the text always says it too. */
export function chip(text, kind = '', attrs = {}) {
  return h('span', { class: ['chip', kind && `chip-${kind}`], ...attrs }, text);
}

/** The URL if it is an absolute http(s) address, else null (no `javascript:` from a tracker). */
export function safeHttpUrl(url) {
  try {
    const parsed = new URL(String(url));
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
  } catch {
    return null;
  }
}

/** A link that opens an external http(s) address in a new tab, or plain text for anything else. */
export function externalLink(url, text, attrs = {}) {
  const href = safeHttpUrl(url);
  if (!href) return h('span', attrs, text);
  return h('a', { ...attrs, href, target: '_blank', rel: 'noopener noreferrer' }, text);
}

/** Disables a button while `work()` runs, so a double click sends one request. */
export async function busy(button, work) {
  const was = button.disabled;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    button.disabled = was;
    button.removeAttribute('aria-busy');
  }
}
