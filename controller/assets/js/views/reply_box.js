// The reply box for an issue waiting in input-required: the agent's question, a text area, Send
// (POST /provide-input) and Dismiss (POST /dismiss-input). Boxes are keyed by issue so a snapshot
// arriving while someone types does not wipe what they typed.

import { h } from '../dom.js';
import { api } from '../api.js';
import { act } from './feedback.js';
import { formatTimestamp } from '../format.js';
import { issuePath } from '../router.js';

/** One reply box for an InputRequiredRow. `showLink` adds a link to the issue page. */
export function replyBox(row, { showLink = true } = {}) {
  const id = row.identifier;
  const inputId = `reply-${id.replace(/[^A-Za-z0-9_-]/g, '_')}-${Math.random().toString(36).slice(2, 7)}`;
  const question = h('pre', { class: 'question', dataset: { testid: 'reply-context' } }, row.context || '(the agent gave no context)');
  const meta = h('p', { class: 'meta' });
  const textarea = h('textarea', { id: inputId, rows: 3, required: true, dataset: { testid: 'reply-input' } });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true, dataset: { testid: 'reply-error' } });
  const send = h('button', { type: 'submit', class: 'button primary', dataset: { testid: 'reply-send' } }, 'Send reply');
  const dismiss = h('button', { type: 'button', class: 'button', dataset: { testid: 'reply-dismiss' } }, 'Dismiss');

  const form = h('form', { class: 'reply-box stack', dataset: { testid: 'reply-box', identifier: id } },
    showLink
      ? h('h3', {}, h('a', { href: issuePath(id) }, id), ' is waiting for your answer')
      : h('h3', {}, 'The agent is waiting for your answer'),
    meta,
    question,
    h('label', { for: inputId }, `Reply to ${id}`),
    textarea,
    error,
    h('div', { class: 'row end' }, dismiss, send));

  const setMeta = (r) => {
    const bits = [`asked ${formatTimestamp(r.queuedAt)}`];
    if (r.backend) bits.push(`backend ${r.backend}`);
    if (r.profile) bits.push(`profile ${r.profile}`);
    if (r.workerHost) bits.push(`on ${r.workerHost}`);
    meta.textContent = bits.join(' · ');
  };
  setMeta(row);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const message = textarea.value.trim();
    if (!message) {
      error.textContent = 'Write a reply first.';
      error.hidden = false;
      textarea.focus();
      return;
    }
    error.hidden = true;
    const done = await act(send, () => api.provideInput(id, message), `Reply sent to ${id}; the agent resumes`);
    if (done !== undefined) textarea.value = '';
  });
  dismiss.addEventListener('click', () =>
    act(dismiss, () => api.dismissInput(id), `${id} dismissed: it is paused now`));

  return {
    el: form,
    update(r) {
      if (question.textContent !== (r.context || '(the agent gave no context)')) question.textContent = r.context || '(the agent gave no context)';
      setMeta(r);
    },
  };
}

/** Keeps one reply box per waiting issue inside `container`, preserving typed text. */
export class ReplyBoxes {
  constructor(container, options = {}) {
    this.container = container;
    this.options = options;
    this.boxes = new Map();
  }

  update(rows) {
    const seen = new Set();
    for (const row of rows) {
      seen.add(row.identifier);
      const existing = this.boxes.get(row.identifier);
      if (existing) existing.update(row);
      else this.boxes.set(row.identifier, replyBox(row, this.options));
    }
    for (const [id, box] of this.boxes) {
      if (!seen.has(id)) {
        box.el.remove();
        this.boxes.delete(id);
      }
    }
    // Keep DOM order equal to the snapshot's order, moving nothing that is already in place (a
    // moved element loses focus, which would interrupt someone typing).
    rows.forEach((row, index) => {
      const el = this.boxes.get(row.identifier).el;
      const at = this.container.children[index] ?? null;
      if (at !== el) this.container.insertBefore(el, at);
    });
  }
}
