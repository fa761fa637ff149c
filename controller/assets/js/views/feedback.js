// User feedback shared by every view: toasts for the outcome of an action, the confirmation dialog
// for destructive ones, and `act`, which runs an API call behind a button and reports its outcome.

import { h } from '../dom.js';
import { describeError } from '../api.js';

const TOAST_OK_MS = 5000;
const TOAST_ERROR_MS = 15000;

/** Shows a toast: kind 'ok' | 'error' | 'info'. Errors stay longer and can be closed. */
export function toast(kind, text) {
  const region = document.getElementById('toasts');
  if (!region) return;
  const item = h('div', {
    class: ['toast', `toast-${kind}`],
    role: kind === 'error' ? 'alert' : 'status',
    dataset: { testid: `toast-${kind}` },
  });
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss message', on: { click: () => item.remove() } }, '×');
  item.append(h('span', { class: 'toast-text' }, text), close);
  region.appendChild(item);
  while (region.children.length > 5) region.firstElementChild.remove();
  setTimeout(() => item.remove(), kind === 'error' ? TOAST_ERROR_MS : TOAST_OK_MS);
}

/**
 * Asks for confirmation in the modal dialog. `option` adds a checkbox ({label, checked}).
 * Resolves to { ok, option } where option is the checkbox state.
 */
export function confirmAction({ title, text, okLabel = 'Confirm', option = null }) {
  const dialog = document.getElementById('confirm-dialog');
  const form = document.getElementById('confirm-form');
  const optionRow = document.getElementById('confirm-option');
  const optionInput = document.getElementById('confirm-option-input');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  optionRow.hidden = !option;
  optionInput.checked = Boolean(option?.checked);
  document.getElementById('confirm-option-label').textContent = option?.label ?? '';
  return new Promise((resolve) => {
    const cancel = document.getElementById('confirm-cancel');
    const finish = (ok) => {
      form.removeEventListener('submit', onSubmit);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      resolve({ ok, option: optionInput.checked });
    };
    const onSubmit = (event) => {
      event.preventDefault();
      finish(true);
    };
    const onCancel = (event) => {
      event.preventDefault();
      finish(false);
    };
    form.addEventListener('submit', onSubmit);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    cancel.focus();
  });
}

/**
 * Runs `work()` (an API call) with `button` disabled meanwhile, then toasts `success(result)` or
 * the error's readable message. Resolves to the result, or undefined after an error.
 */
export async function act(button, work, success) {
  if (button) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  }
  try {
    const result = await work();
    const message = typeof success === 'function' ? success(result) : success;
    if (message) toast('ok', message);
    return result;
  } catch (err) {
    toast('error', describeError(err));
    return undefined;
  } finally {
    if (button) {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }
}
