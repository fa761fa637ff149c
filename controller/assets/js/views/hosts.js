// The host pool page: every SSH build host with status, load against capacity, latency and last
// error; the add-host form (POST /ssh-hosts), removal with an optional drain, and the dispatch
// strategy switch.

import { h, card, table, empty, chip, setChildren, field } from '../dom.js';
import { api, describeError } from '../api.js';
import { act, confirmAction, toast } from './feedback.js';
import { hostLoad } from '../derive.js';
import { formatLatency } from '../format.js';

const STATUS_KIND = { up: 'ok', connecting: 'info', down: 'error', draining: 'warn' };

/** Mounts the host pool page into `root`. */
export function mountHosts(root, ctx) {
  const list = h('div', { dataset: { testid: 'host-list' } });

  const hostInput = h('input', { type: 'text', required: true, autocomplete: 'off', placeholder: 'builder@build-1.example.com:22', dataset: { testid: 'add-host-host' } });
  const descInput = h('input', { type: 'text', autocomplete: 'off', placeholder: 'what runs there', dataset: { testid: 'add-host-description' } });
  const addError = h('p', { class: 'form-error', role: 'alert', hidden: true, dataset: { testid: 'add-host-error' } });
  const addButton = h('button', { type: 'submit', class: 'button primary', dataset: { testid: 'add-host-submit' } }, 'Add host');
  const form = h('form', { class: 'stack', dataset: { testid: 'add-host-form' }, 'aria-label': 'Add a build host' },
    h('div', { class: 'row wrap' },
      field('add-host-host', 'Host ([user@]name[:port])', hostInput),
      field('add-host-description', 'Description', descInput)),
    addError,
    h('div', { class: 'row' }, addButton));

  const strategy = h('select', { dataset: { testid: 'dispatch-strategy' } },
    h('option', { value: 'round-robin' }, 'Round robin'),
    h('option', { value: 'least-loaded' }, 'Least loaded'));

  root.append(
    h('h1', {}, 'Build hosts'),
    card('Host pool', { id: 'host-pool' }, list),
    h('div', { class: 'grid-2' },
      card('Add a host', { id: 'add-host' },
        h('p', { class: 'meta' }, 'The controller connects over SSH with its configured key and checks the host key against known_hosts.'),
        form),
      card('Dispatch strategy', { id: 'dispatch' },
        field('dispatch-strategy', 'New sessions go to', strategy,
          'Round robin spreads sessions in turn; least loaded picks the host with the most free capacity.'))));

  const refreshHosts = async () => {
    try {
      const hosts = await api.hosts();
      if (Array.isArray(hosts)) ctx.store.set({ hostsOverride: hosts });
    } catch {
      // The next snapshot carries the host list anyway.
    }
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const host = hostInput.value.trim();
    if (!host) {
      addError.textContent = 'Enter a host name.';
      addError.hidden = false;
      hostInput.focus();
      return;
    }
    addError.hidden = true;
    addButton.disabled = true;
    try {
      await api.addHost(host, descInput.value.trim());
      toast('ok', `Host ${host} added`);
      hostInput.value = '';
      descInput.value = '';
      await refreshHosts();
    } catch (err) {
      addError.textContent = describeError(err);
      addError.hidden = false;
      hostInput.focus();
    } finally {
      addButton.disabled = false;
    }
  });

  strategy.addEventListener('change', async () => {
    const value = strategy.value;
    const previous = strategy.dataset.current ?? '';
    strategy.disabled = true;
    try {
      await api.setDispatchStrategy(value);
      strategy.dataset.current = value;
      toast('ok', `Dispatch strategy: ${value}`);
    } catch (err) {
      if (previous) strategy.value = previous;
      toast('error', describeError(err));
    } finally {
      strategy.disabled = false;
    }
  });

  const removeButton = (host) => {
    const button = h('button', { type: 'button', class: 'button small danger', dataset: { testid: 'host-remove' }, 'aria-label': `Remove ${host}` }, 'Remove');
    button.addEventListener('click', async () => {
      const { ok, option: drain } = await confirmAction({
        title: `Remove ${host}?`,
        text: 'No new session will be dispatched to this host.',
        okLabel: 'Remove host',
        option: { label: 'Drain: let sessions running there finish (otherwise they are cancelled)', checked: true },
      });
      if (!ok) return;
      const done = await act(button, () => api.removeHost(host, drain), drain ? `${host} is draining and will be removed` : `${host} removed`);
      if (done !== undefined) await refreshHosts();
    });
    return button;
  };

  const render = (state) => {
    const hosts = state.hostsOverride ?? state.snapshot?.sshHosts ?? [];
    if (!state.snapshot && !state.hostsOverride) {
      setChildren(list, empty('Waiting for the first snapshot from the server…'));
    } else if (hosts.length === 0) {
      setChildren(list, empty('No SSH build hosts: agents run on this machine.', { dataset: { testid: 'hosts-empty' } }));
    } else {
      setChildren(list, table('Build hosts', ['Host', 'Status', 'Load', 'Latency', 'Worker', 'Last error', 'Actions'],
        hosts.map((host) => {
          const load = hostLoad(host);
          const status = host.status ?? 'unknown';
          return h('tr', { dataset: { testid: 'host-row', host: host.host, status } },
            h('td', {}, h('span', { class: 'mono' }, host.host), host.description ? h('span', { class: 'meta block' }, host.description) : null),
            h('td', {}, chip(status, STATUS_KIND[status] ?? '', { dataset: { testid: 'host-status' } })),
            h('td', { class: 'load' },
              load.ratio === null
                ? null
                : h('meter', { min: 0, max: load.capacity, value: load.running, low: load.capacity * 0.7, high: load.capacity * 0.95, optimum: 0, 'aria-label': `Load of ${host.host}` }),
              h('span', { class: 'meta', dataset: { testid: 'host-load' } }, load.label)),
            h('td', { class: 'num' }, formatLatency(host.latencyMs)),
            h('td', { class: 'meta' },
              host.workerVersion ? `v${host.workerVersion}` : '—',
              host.load1 != null ? ` · load ${host.load1.toFixed(2)}${host.cpus ? `/${host.cpus} cpu` : ''}` : ''),
            h('td', { class: host.lastError ? 'error-text' : 'none', dataset: { testid: 'host-error' } }, host.lastError || '—'),
            h('td', { class: 'actions' }, removeButton(host.host)));
        })));
    }
    if (document.activeElement !== strategy && state.snapshot?.dispatchStrategy) {
      strategy.value = state.snapshot.dispatchStrategy;
      strategy.dataset.current = state.snapshot.dispatchStrategy;
    }
  };

  return {
    update(state, changed) {
      if (changed.has('snapshot') || changed.has('hostsOverride')) render(state);
    },
    destroy() {},
  };
}
