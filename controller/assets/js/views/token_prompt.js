// The token prompt: a modal dialog shown whenever the API answers 401, asking for the bearer token.

/** Wires the dialog; `onToken(token)` runs on submit. Returns `update(state)`. */
export function mountTokenPrompt(onToken) {
  const dialog = document.getElementById('token-prompt');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const error = document.getElementById('token-error');

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      error.textContent = 'Enter the API token.';
      error.hidden = false;
      input.focus();
      return;
    }
    onToken(token);
  });
  // Without a token nothing works: Escape does not dismiss the prompt.
  dialog.addEventListener('cancel', (event) => event.preventDefault());

  return {
    update(state) {
      if (state.needToken && !dialog.open) {
        input.value = '';
        dialog.showModal();
        input.focus();
      } else if (!state.needToken && dialog.open) {
        dialog.close();
      }
      if (state.needToken) {
        error.hidden = !state.tokenError;
        error.textContent = state.tokenError || '';
      }
    },
  };
}
