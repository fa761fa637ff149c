// The settings page: concurrency, agent mode, workspace and input toggles, tracker states, the
// profile editor, the reviewer, the Linear project filter and clearing all workspaces. Every change
// goes through its /api/v1/settings route, which persists it into WORKFLOW.md.

import { h, card, empty, setChildren, field } from '../dom.js';
import { api, describeError } from '../api.js';
import { act, confirmAction, toast } from './feedback.js';
import { splitList } from '../format.js';

/** Mounts the settings page into `root`. */
export function mountSettings(root, ctx) {
  const parts = [
    workersCard(),
    agentModeCard(),
    togglesCard(),
    trackerStatesCard(),
    profilesCard(),
    reviewerCard(),
    projectFilterCard(),
    dangerCard(),
  ];
  root.append(h('h1', {}, 'Settings'), h('div', { class: 'settings-grid' }, parts.map((p) => p.el)));
  const snapshotParts = parts.filter((p) => p.update);
  const render = (state) => {
    for (const part of snapshotParts) part.update(state.snapshot);
  };
  render(ctx.store.get());
  return {
    update(state, changed) {
      if (changed.has('snapshot')) render(state);
    },
    destroy() {},
  };
}

/** An inline error line for a form. */
function formError(testid) {
  return h('p', { class: 'form-error', role: 'alert', hidden: true, dataset: { testid } });
}

function showError(el, err) {
  el.textContent = describeError(err);
  el.hidden = false;
}

/** Marks a form dirty on input, so snapshots do not overwrite what someone is editing. */
function trackDirty(form) {
  form.addEventListener('input', () => {
    form.dataset.dirty = 'true';
  });
  return () => form.dataset.dirty === 'true';
}

function workersCard() {
  const current = h('output', { class: 'big-number', dataset: { testid: 'workers-current' } }, '—');
  const minus = h('button', { type: 'button', class: 'button', 'aria-label': 'One agent fewer', dataset: { testid: 'workers-minus' } }, '−');
  const plus = h('button', { type: 'button', class: 'button', 'aria-label': 'One agent more', dataset: { testid: 'workers-plus' } }, '+');
  const input = h('input', { type: 'number', min: 1, step: 1, inputmode: 'numeric', dataset: { testid: 'workers-input' } });
  const set = h('button', { type: 'submit', class: 'button primary', dataset: { testid: 'workers-set' } }, 'Set');
  const error = formError('workers-error');
  const show = (result) => {
    if (result && Number.isFinite(result.workers)) current.textContent = String(result.workers);
    return result ? `Up to ${result.workers} agents at once` : 'Saved';
  };
  const change = async (button, work) => {
    error.hidden = true;
    await act(button, work, show);
  };
  minus.addEventListener('click', () => change(minus, () => api.changeWorkers(-1)));
  plus.addEventListener('click', () => change(plus, () => api.changeWorkers(1)));
  const form = h('form', { class: 'stack', 'aria-label': 'Maximum concurrent agents' },
    h('div', { class: 'row' }, minus, current, plus),
    h('div', { class: 'row wrap' }, field('workers-input', 'Set exactly', input), set),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const n = Number.parseInt(input.value, 10);
    if (!Number.isInteger(n) || n < 1) {
      error.textContent = 'Enter a whole number of at least 1.';
      error.hidden = false;
      return;
    }
    await change(set, () => api.setWorkers(n));
  });
  return {
    el: card('Concurrent agents', { id: 'settings-workers', dataset: { testid: 'settings-workers' } },
      h('p', { class: 'meta' }, 'How many agent sessions run at once, across all hosts.'), form),
    update(snapshot) {
      if (snapshot) current.textContent = String(snapshot.maxConcurrentAgents);
    },
  };
}

function agentModeCard() {
  const select = h('select', { dataset: { testid: 'agent-mode' } },
    h('option', { value: 'solo' }, 'Solo: one agent works alone'),
    h('option', { value: 'subagents' }, 'Sub-agents: the agent may delegate'),
    h('option', { value: 'teams' }, 'Teams: coordinated agent teams'));
  select.addEventListener('change', async () => {
    const previous = select.dataset.current ?? '';
    select.disabled = true;
    try {
      await api.setAgentMode(select.value);
      select.dataset.current = select.value;
      toast('ok', `Agent mode: ${select.value}`);
    } catch (err) {
      if (previous) select.value = previous;
      toast('error', describeError(err));
    } finally {
      select.disabled = false;
    }
  });
  return {
    el: card('Agent mode', { id: 'settings-agent-mode' }, field('agent-mode', 'Collaboration mode', select,
      'Changes the prompt appendix of new sessions.')),
    update(snapshot) {
      if (snapshot?.agentMode && document.activeElement !== select && !select.disabled) {
        select.value = snapshot.agentMode;
        select.dataset.current = snapshot.agentMode;
      }
    },
  };
}

function toggle(id, label, hint, send, testid) {
  const input = h('input', { type: 'checkbox', id, dataset: { testid } });
  input.addEventListener('change', async () => {
    const wanted = input.checked;
    input.disabled = true;
    try {
      await send(wanted);
      toast('ok', `${label}: ${wanted ? 'on' : 'off'}`);
    } catch (err) {
      input.checked = !wanted;
      toast('error', describeError(err));
    } finally {
      input.disabled = false;
    }
  });
  const el = h('div', { class: 'field' },
    h('label', { class: 'check', for: id }, input, ` ${label}`),
    h('small', { class: 'hint' }, hint));
  return { el, input };
}

function togglesCard() {
  const autoClear = toggle('auto-clear', 'Clear workspaces automatically',
    'Remove an issue\'s worktree once its run completes.', (on) => api.setAutoClear(on), 'auto-clear');
  const inline = toggle('inline-input', 'Answer agent questions here',
    'Input-required prompts appear in this dashboard instead of as tracker comments.', (on) => api.setInlineInput(on), 'inline-input');
  return {
    el: card('Workspaces and input', { id: 'settings-toggles' }, autoClear.el, inline.el),
    update(snapshot) {
      if (!snapshot) return;
      if (!autoClear.input.disabled && typeof snapshot.autoClearWorkspace === 'boolean') autoClear.input.checked = snapshot.autoClearWorkspace;
      if (!inline.input.disabled && typeof snapshot.inlineInput === 'boolean') inline.input.checked = snapshot.inlineInput;
    },
  };
}

function trackerStatesCard() {
  const inputs = {
    activeStates: h('input', { type: 'text', dataset: { testid: 'states-active' } }),
    backlogStates: h('input', { type: 'text', dataset: { testid: 'states-backlog' } }),
    terminalStates: h('input', { type: 'text', dataset: { testid: 'states-terminal' } }),
    completionState: h('input', { type: 'text', dataset: { testid: 'states-completion' } }),
    workingState: h('input', { type: 'text', dataset: { testid: 'states-working' } }),
    failedState: h('input', { type: 'text', dataset: { testid: 'states-failed' } }),
  };
  const error = formError('states-error');
  const save = h('button', { type: 'submit', class: 'button primary', dataset: { testid: 'states-save' } }, 'Save states');
  const form = h('form', { class: 'stack', 'aria-label': 'Tracker states' },
    field('states-active', 'Active states (comma-separated)', inputs.activeStates, 'Issues in these states get an agent.'),
    field('states-backlog', 'Backlog states', inputs.backlogStates),
    field('states-terminal', 'Terminal states', inputs.terminalStates),
    field('states-completion', 'Completion state', inputs.completionState, 'Where an issue moves when its agent finishes.'),
    field('states-working', 'Working state (optional)', inputs.workingState),
    field('states-failed', 'Failed state (optional)', inputs.failedState),
    error,
    h('div', { class: 'row' }, save));
  const dirty = trackDirty(form);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const body = {
      activeStates: splitList(inputs.activeStates.value),
      terminalStates: splitList(inputs.terminalStates.value),
      completionState: inputs.completionState.value.trim(),
      backlogStates: splitList(inputs.backlogStates.value),
    };
    if (inputs.workingState.value.trim()) body.workingState = inputs.workingState.value.trim();
    if (inputs.failedState.value.trim()) body.failedState = inputs.failedState.value.trim();
    if (body.activeStates.length === 0) {
      error.textContent = 'Name at least one active state.';
      error.hidden = false;
      return;
    }
    save.disabled = true;
    try {
      await api.setTrackerStates(body);
      form.dataset.dirty = '';
      toast('ok', 'Tracker states saved');
    } catch (err) {
      showError(error, err);
    } finally {
      save.disabled = false;
    }
  });
  return {
    el: card('Tracker states', { id: 'settings-states' }, form),
    update(snapshot) {
      if (!snapshot || dirty()) return;
      inputs.activeStates.value = (snapshot.activeStates ?? []).join(', ');
      inputs.backlogStates.value = (snapshot.backlogStates ?? []).join(', ');
      inputs.terminalStates.value = (snapshot.terminalStates ?? []).join(', ');
      inputs.completionState.value = snapshot.completionState ?? '';
      inputs.workingState.value = snapshot.workingState ?? '';
      inputs.failedState.value = snapshot.failedState ?? '';
    },
  };
}

function profilesCard() {
  const list = h('div', { class: 'stack', dataset: { testid: 'profiles-list' } }, h('p', { class: 'meta' }, 'Loading profiles…'));
  const error = formError('profiles-error');
  let backends = ['claude', 'codex'];

  const backendSelect = (current) => {
    const values = backends.includes(current) || !current ? ['', ...backends] : ['', ...backends, current];
    const select = h('select', {}, values.map((v) => h('option', { value: v }, v || 'Default backend')));
    select.value = current ?? '';
    return select;
  };

  const profileForm = (name, def, isNew) => {
    const uid = Math.random().toString(36).slice(2, 8);
    const nameInput = h('input', { type: 'text', required: true, value: name, readonly: !isNew || null, dataset: { testid: 'profile-name' } });
    const command = h('textarea', { rows: 2, required: true, dataset: { testid: 'profile-command' } });
    command.value = def.command ?? '';
    const prompt = h('textarea', { rows: 3, dataset: { testid: 'profile-prompt' } });
    prompt.value = def.prompt ?? '';
    const backend = backendSelect(def.backend ?? '');
    backend.dataset.testid = 'profile-backend';
    const formErr = formError('profile-error');
    const save = h('button', { type: 'submit', class: 'button primary', dataset: { testid: 'profile-save' } }, isNew ? 'Create profile' : 'Save');
    const del = isNew ? null : h('button', { type: 'button', class: 'button danger', dataset: { testid: 'profile-delete' } }, 'Delete');
    const form = h('form', { class: 'profile-form stack', dataset: { testid: isNew ? 'profile-new' : 'profile', profile: name } },
      isNew ? h('h3', {}, 'New profile') : null,
      field(`profile-name-${uid}`, 'Name', nameInput),
      field(`profile-command-${uid}`, 'Command', command, 'The agent CLI command line, e.g. claude --model sonnet.'),
      field(`profile-prompt-${uid}`, 'Extra prompt (optional)', prompt),
      field(`profile-backend-${uid}`, 'Backend', backend),
      formErr,
      h('div', { class: 'row end' }, del, save));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      formErr.hidden = true;
      const profileName = nameInput.value.trim();
      if (!profileName || !command.value.trim()) {
        formErr.textContent = 'A profile needs a name and a command.';
        formErr.hidden = false;
        return;
      }
      const body = { command: command.value.trim() };
      if (prompt.value.trim()) body.prompt = prompt.value;
      if (backend.value) body.backend = backend.value;
      save.disabled = true;
      try {
        await api.saveProfile(profileName, body);
        toast('ok', `Profile ${profileName} saved`);
        await load();
      } catch (err) {
        showError(formErr, err);
      } finally {
        save.disabled = false;
      }
    });
    del?.addEventListener('click', async () => {
      const { ok } = await confirmAction({ title: `Delete profile ${name}?`, text: 'Issues that use it fall back to the default profile.', okLabel: 'Delete' });
      if (!ok) return;
      const done = await act(del, () => api.deleteProfile(name), `Profile ${name} deleted`);
      if (done !== undefined) await load();
    });
    return form;
  };

  const load = async () => {
    error.hidden = true;
    try {
      const answer = await api.profiles();
      const profiles = answer?.profiles ?? {};
      const names = Object.keys(profiles).sort();
      setChildren(list,
        names.length ? names.map((n) => profileForm(n, profiles[n], false)) : empty('No profiles: every issue uses the default agent command.'),
        profileForm('', {}, true));
    } catch (err) {
      setChildren(list);
      showError(error, err);
    }
  };
  load();

  const models = h('div', { class: 'meta', dataset: { testid: 'available-models' } });
  return {
    el: card('Agent profiles', { id: 'settings-profiles', dataset: { testid: 'settings-profiles' } }, error, models, list),
    update(snapshot) {
      const available = snapshot?.availableModels ?? {};
      backends = [...new Set(['claude', 'codex', ...Object.keys(available)])];
      const lines = Object.entries(available)
        .filter(([, list]) => Array.isArray(list) && list.length)
        .map(([backend, list]) => h('p', { class: 'meta' }, h('strong', {}, `${backend} models: `),
          list.map((m) => (m.label && m.label !== m.id ? `${m.label} (${m.id})` : m.id)).join(', ')));
      setChildren(models, lines);
    },
  };
}

function reviewerCard() {
  const profile = h('select', { dataset: { testid: 'reviewer-profile' } });
  const auto = h('input', { type: 'checkbox', id: 'reviewer-auto', dataset: { testid: 'reviewer-auto' } });
  const error = formError('reviewer-error');
  const save = h('button', { type: 'submit', class: 'button primary', dataset: { testid: 'reviewer-save' } }, 'Save reviewer');
  const form = h('form', { class: 'stack', 'aria-label': 'Reviewer' },
    field('reviewer-profile', 'Reviewer profile', profile),
    h('label', { class: 'check', for: 'reviewer-auto' }, auto, ' Review every new pull request automatically'),
    error,
    h('div', { class: 'row' }, save));
  const dirty = trackDirty(form);
  let loaded = { profile: '', autoReview: false };
  let profiles = [];
  const fill = () => {
    const values = profiles.includes(loaded.profile) || !loaded.profile ? ['', ...profiles] : ['', ...profiles, loaded.profile];
    setChildren(profile, values.map((v) => h('option', { value: v }, v || 'None')));
    profile.value = loaded.profile;
    auto.checked = loaded.autoReview;
  };
  api.reviewer().then((r) => {
    loaded = { profile: r?.profile ?? '', autoReview: Boolean(r?.autoReview ?? r?.auto_review) };
    if (!dirty()) fill();
  }).catch((err) => showError(error, err));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    save.disabled = true;
    try {
      await api.saveReviewer(profile.value, auto.checked);
      loaded = { profile: profile.value, autoReview: auto.checked };
      form.dataset.dirty = '';
      toast('ok', 'Reviewer saved');
    } catch (err) {
      showError(error, err);
    } finally {
      save.disabled = false;
    }
  });
  return {
    el: card('Reviewer', { id: 'settings-reviewer' }, form),
    update(snapshot) {
      const next = snapshot?.availableProfiles ?? [];
      if (next.join('\n') !== profiles.join('\n')) {
        profiles = next;
        if (!dirty()) fill();
      }
    },
  };
}

function projectFilterCard() {
  const body = h('div', { class: 'stack', dataset: { testid: 'project-filter' } }, h('p', { class: 'meta' }, 'Loading projects…'));
  const el = card('Project filter', { id: 'settings-projects', dataset: { testid: 'settings-projects' } }, body);
  const error = formError('projects-error');

  const render = (projects, filter) => {
    const chosen = new Set(filter ?? []);
    const boxes = projects.map((p) => {
      const box = h('input', { type: 'checkbox', value: p.slug, checked: chosen.has(p.slug), dataset: { testid: 'project-option' } });
      return { box, el: h('label', { class: 'check' }, box, ` ${p.name} `, h('span', { class: 'meta mono' }, p.slug)) };
    });
    const describe = filter === null || filter === undefined
      ? 'Using the default from WORKFLOW.md.'
      : filter.length === 0 ? 'Showing issues of all projects.' : `Only: ${filter.join(', ')}.`;
    const send = async (button, slugs, message) => {
      error.hidden = true;
      button.disabled = true;
      try {
        const answer = await api.setProjectFilter(slugs);
        toast('ok', message);
        render(projects, answer?.filter ?? slugs);
      } catch (err) {
        showError(error, err);
      } finally {
        button.disabled = false;
      }
    };
    const save = h('button', { type: 'button', class: 'button primary', dataset: { testid: 'project-filter-save' } }, 'Use selected');
    save.addEventListener('click', () => {
      const slugs = boxes.filter((b) => b.box.checked).map((b) => b.box.value);
      send(save, slugs, slugs.length ? `Project filter: ${slugs.join(', ')}` : 'Project filter: all projects');
    });
    const all = h('button', { type: 'button', class: 'button' }, 'All projects');
    all.addEventListener('click', () => send(all, [], 'Project filter: all projects'));
    const reset = h('button', { type: 'button', class: 'button' }, 'Default');
    reset.addEventListener('click', () => send(reset, null, 'Project filter: WORKFLOW.md default'));
    setChildren(body,
      h('p', { class: 'meta', dataset: { testid: 'project-filter-current' } }, describe),
      projects.length ? h('fieldset', { class: 'stack' }, h('legend', {}, 'Projects'), boxes.map((b) => b.el)) : empty('The tracker lists no projects.'),
      error,
      h('div', { class: 'row wrap' }, reset, all, save));
  };

  Promise.all([api.projects(), api.projectFilter()]).then(([projects, filter]) => {
    render(projects?.projects ?? [], filter?.filter ?? null);
  }).catch((err) => {
    // 501: this tracker has no projects (GitHub, local files): the section does not apply.
    if (err?.status === 501) {
      el.hidden = true;
      return;
    }
    setChildren(body, error);
    showError(error, err);
  });
  return { el };
}

function dangerCard() {
  const clear = h('button', { type: 'button', class: 'button danger', dataset: { testid: 'clear-workspaces' } }, 'Clear all workspaces');
  clear.addEventListener('click', async () => {
    const { ok } = await confirmAction({
      title: 'Remove every workspace?',
      text: 'This deletes every worktree Itervox manages, on every host. Agents running now will fail their next git operation.',
      okLabel: 'Remove all workspaces',
    });
    if (ok) await act(clear, () => api.clearWorkspaces(), 'Removing every workspace');
  });
  return { el: card('Danger zone', { id: 'settings-danger', class: 'card danger-zone' }, clear) };
}
