// The issue page: the tracker issue (description, comments), the orchestrator's live state, the
// actions (cancel, resume, terminate, reanalyze, AI review), profile and backend pickers, the reply
// box while the agent waits for input, the live log (GET /logs + /log-stream) and sub-agent logs.

import { h, card, chip, empty, setChildren, field, externalLink, safeHttpUrl } from '../dom.js';
import { api, describeError, streamUrl } from '../api.js';
import { act, confirmAction, toast } from './feedback.js';
import { elapsed } from './ticker.js';
import { ReplyBoxes } from './reply_box.js';
import { LiveStream } from '../live.js';
import { serverNow } from '../store.js';
import { LogBuffer, backendChoices, groupBySession, orchestratorStateOf, runningSince } from '../derive.js';
import { formatClock, formatTimestamp, formatTokens, humanize, parseTime } from '../format.js';

const STATE_KIND = { running: 'ok', retrying: 'warn', paused: 'muted', input_required: 'info', idle: '' };

/** Mounts the page of issue `params.id` into `root`. */
export function mountIssue(root, ctx, params) {
  const id = params.id;
  const page = new IssuePage(root, ctx, id);
  return {
    update: (state, changed) => page.update(state, changed),
    destroy: () => page.destroy(),
  };
}

class IssuePage {
  constructor(root, ctx, id) {
    this.ctx = ctx;
    this.id = id;
    this.issue = null;
    this.lastOrchestratorState = null;
    this.destroyed = false;

    this.title = h('h1', { class: 'issue-heading' }, h('span', { class: 'issue-id' }, id));
    this.headerChips = h('div', { class: 'chips', dataset: { testid: 'issue-chips' } });
    this.headerMeta = h('p', { class: 'meta' });
    this.loadError = h('p', { class: 'banner error', role: 'alert', hidden: true, dataset: { testid: 'issue-error' } });

    this.buttons = {
      cancel: this.actionButton('Cancel', 'action-cancel', '', () =>
        act(this.buttons.cancel, () => api.cancel(id), `${id} cancelled: paused until resumed`)),
      resume: this.actionButton('Resume', 'action-resume', 'primary', () =>
        act(this.buttons.resume, () => api.resume(id), `${id} resumed: eligible on the next poll`)),
      terminate: this.actionButton('Terminate', 'action-terminate', 'danger', async () => {
        const { ok } = await confirmAction({
          title: `Terminate ${id}?`,
          text: 'This stops the agent at once, releases the claim and moves the issue back to an active state, so it may be dispatched again right away.',
          okLabel: 'Terminate',
        });
        if (ok) await act(this.buttons.terminate, () => api.terminate(id), `${id} terminated`);
      }),
      reanalyze: this.actionButton('Reanalyze', 'action-reanalyze', '', () =>
        act(this.buttons.reanalyze, () => api.reanalyze(id), `${id} queued for re-analysis`)),
      aiReview: this.actionButton('AI review', 'action-ai-review', '', () =>
        act(this.buttons.aiReview, () => api.aiReview(id), `AI review of ${id} queued`)),
    };

    this.profileSelect = h('select', { dataset: { testid: 'profile-picker' } });
    this.backendSelect = h('select', { dataset: { testid: 'backend-picker' } });
    this.profileSelect.addEventListener('change', () => this.pick(this.profileSelect, 'profile'));
    this.backendSelect.addEventListener('change', () => this.pick(this.backendSelect, 'backend'));

    this.replies = h('div', { class: 'stack' });
    this.replyCard = card('Input required', { id: 'issue-input', hidden: true }, this.replies);
    this.replyBoxes = new ReplyBoxes(this.replies, { showLink: false });

    this.session = h('div', { dataset: { testid: 'issue-session' } });
    this.description = h('div', { class: 'prose', dataset: { testid: 'issue-description' } }, 'Loading…');
    this.comments = h('div', { dataset: { testid: 'issue-comments' } });

    this.logList = h('ol', { class: 'log', dataset: { testid: 'log-view', minLevel: 'info' }, 'aria-label': `Log of ${id}`, tabindex: '0' });
    this.logStatus = h('span', { class: 'pill', role: 'status', dataset: { testid: 'log-status' } }, 'Loading…');
    this.follow = h('input', { type: 'checkbox', id: 'log-follow', checked: true, dataset: { testid: 'log-follow' } });
    this.levelSelect = h('select', { dataset: { testid: 'log-level' } },
      h('option', { value: 'info' }, 'All levels'),
      h('option', { value: 'warn' }, 'Warnings and errors'),
      h('option', { value: 'error' }, 'Errors only'));
    this.levelSelect.addEventListener('change', () => {
      this.logList.dataset.minLevel = this.levelSelect.value;
    });
    const clearLog = h('button', { type: 'button', class: 'button small', dataset: { testid: 'log-clear' } }, 'Clear log');
    clearLog.addEventListener('click', async () => {
      const { ok } = await confirmAction({ title: `Clear the log of ${id}?`, text: 'The server forgets the buffered log lines of this issue.', okLabel: 'Clear' });
      if (!ok) return;
      const done = await act(clearLog, () => api.clearLogs(id), 'Log cleared');
      if (done !== undefined) {
        this.buffer.clear();
        this.logList.replaceChildren();
      }
    });
    this.buffer = new LogBuffer(5000);

    this.sublogs = h('div', { dataset: { testid: 'sublogs' } },
      h('p', { class: 'meta' }, 'Session logs of the agent and every sub-agent it started, fetched from the host that ran them.'));
    const loadSublogs = h('button', { type: 'button', class: 'button small', dataset: { testid: 'sublogs-load' } }, 'Load sub-agent logs');
    loadSublogs.addEventListener('click', () => this.loadSublogs(loadSublogs));
    const clearSublogs = h('button', { type: 'button', class: 'button small danger', dataset: { testid: 'sublogs-clear' } }, 'Delete all sub-agent logs');
    clearSublogs.addEventListener('click', async () => {
      const { ok } = await confirmAction({ title: `Delete every sub-agent log of ${id}?`, text: 'The session logs are removed from the host that ran them.', okLabel: 'Delete all' });
      if (!ok) return;
      const done = await act(clearSublogs, () => api.clearSublogs(id), 'Sub-agent logs deleted');
      if (done !== undefined) setChildren(this.sublogs, empty('No sub-agent session logs for this issue.', { dataset: { testid: 'sublogs-empty' } }));
    });

    root.append(
      h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/board' }, 'Board'), ' / ', id),
      h('header', { class: 'issue-header' }, this.title, this.headerChips, this.headerMeta),
      this.loadError,
      card('Actions', { id: 'issue-actions' },
        h('div', { class: 'row wrap' }, Object.values(this.buttons)),
        h('div', { class: 'row wrap' },
          field('issue-profile', 'Agent profile', this.profileSelect),
          field('issue-backend', 'Backend', this.backendSelect))),
      this.replyCard,
      h('div', { class: 'grid-2' },
        card('Description', { id: 'issue-description' }, this.description, h('h3', {}, 'Comments'), this.comments),
        card('Session', { id: 'issue-session' }, this.session)),
      card('Live log', { id: 'issue-log' },
        h('div', { class: 'row wrap' },
          this.logStatus,
          h('label', { class: 'check' }, this.follow, ' Follow'),
          h('label', { class: 'visually-hidden', for: 'log-level' }, 'Log level'),
          Object.assign(this.levelSelect, { id: 'log-level' }),
          clearLog),
        this.logList),
      card('Sub-agent logs', { id: 'issue-sublogs' }, h('div', { class: 'row wrap' }, loadSublogs, clearSublogs), this.sublogs));

    this.loadIssue();
    this.startLog();
  }

  actionButton(label, testid, kind, onClick) {
    const button = h('button', { type: 'button', class: ['button', kind], dataset: { testid } }, label);
    button.addEventListener('click', onClick);
    return button;
  }

  async loadIssue() {
    try {
      const issue = await api.issue(this.id);
      if (this.destroyed) return;
      this.issue = issue;
      this.loadError.hidden = true;
    } catch (err) {
      if (this.destroyed) return;
      this.loadError.textContent = `Could not load ${this.id} from the tracker: ${describeError(err)}`;
      this.loadError.hidden = false;
    }
    this.render(this.ctx.store.get());
  }

  update(state, changed) {
    if (!changed.has('snapshot') && !changed.has('clockOffsetMs')) return;
    const now = orchestratorStateOf(this.id, state.snapshot, this.issue?.orchestratorState);
    if (this.lastOrchestratorState !== null && now !== this.lastOrchestratorState) this.loadIssue();
    this.lastOrchestratorState = now;
    this.render(state);
  }

  render(state) {
    const snapshot = state.snapshot;
    const issue = this.issue;
    const orch = orchestratorStateOf(this.id, snapshot, issue?.orchestratorState);
    const running = (snapshot?.running ?? []).find((r) => r.identifier === this.id);

    setChildren(this.title, h('span', { class: 'issue-id' }, this.id), issue?.title ? ` ${issue.title}` : '');
    setChildren(this.headerChips,
      issue?.state ? chip(issue.state, 'label', { title: 'Tracker state' }) : null,
      chip(humanize(orch), STATE_KIND[orch] ?? '', { dataset: { testid: 'issue-orchestrator-state' }, title: 'Orchestrator state' }),
      issue?.url && safeHttpUrl(issue.url) ? externalLink(issue.url, 'Open in tracker', { dataset: { testid: 'issue-url' } }) : null);
    const meta = [];
    if (issue?.priority) meta.push(`priority ${issue.priority}`);
    if (issue?.labels?.length) meta.push(`labels ${issue.labels.join(', ')}`);
    if (issue?.branchName) meta.push(`branch ${issue.branchName}`);
    if (issue?.blockedBy?.length) meta.push(`blocked by ${issue.blockedBy.join(', ')}`);
    if (orch === 'idle' && issue?.ineligibleReason) meta.push(`why idle: ${issue.ineligibleReason}`);
    const pause = snapshot?.pauseReasons?.[this.id] ?? issue?.pauseReason;
    if (orch === 'paused' && pause) meta.push(`paused: ${pause}`);
    this.headerMeta.textContent = meta.join(' · ');

    this.buttons.cancel.disabled = orch !== 'running';
    this.buttons.resume.disabled = orch !== 'paused';
    this.buttons.terminate.disabled = orch === 'idle';

    this.fillSelect(this.profileSelect, ['', ...(snapshot?.availableProfiles ?? [])],
      running?.profile ?? issue?.agentProfile ?? '', (v) => v || 'Default profile');
    this.fillSelect(this.backendSelect, ['', ...backendChoices(snapshot)],
      running?.backend ?? issue?.agentBackend ?? '', (v) => v || 'Default backend');

    const waiting = (snapshot?.inputRequired ?? []).filter((r) => r.identifier === this.id);
    this.replyCard.hidden = waiting.length === 0;
    this.replyBoxes.update(waiting);

    this.renderSession(state, running, issue);

    if (issue) {
      setChildren(this.description, issue.description ? h('p', { class: 'pre-wrap' }, issue.description) : empty('No description.'));
      const comments = issue.comments ?? [];
      setChildren(this.comments, comments.length
        ? h('ol', { class: 'comments' }, comments.map((c) => h('li', { class: 'comment', dataset: { testid: 'issue-comment' } },
          h('p', { class: 'meta' }, h('strong', {}, c.author || 'unknown'), c.createdAt ? ` · ${formatTimestamp(c.createdAt)}` : ''),
          h('p', { class: 'pre-wrap' }, c.body ?? ''))))
        : empty('No comments.'));
    } else if (!this.loadError.hidden) {
      setChildren(this.description, empty('The tracker issue could not be loaded.'));
    }
  }

  renderSession(state, running, issue) {
    const now = serverNow(state);
    if (running) {
      const generated = parseTime(state.snapshot.generatedAt);
      setChildren(this.session, h('dl', { class: 'facts' },
        fact('Host', running.workerHost || 'local'),
        fact('Backend', running.backend || '—'),
        fact('Profile', running.profile || '—'),
        fact('Turn', String(running.turnCount ?? 0)),
        fact('Elapsed', elapsed(runningSince(running, generated), now)),
        fact('Tokens', `${formatTokens(running.inputTokens ?? 0)} in / ${formatTokens(running.outputTokens ?? 0)} out`),
        running.lastEvent ? fact('Last event', `${running.lastEvent}${running.lastMessage ? `: ${running.lastMessage}` : ''}`) : null,
        running.sessionId ? fact('Session', running.sessionId) : null));
      return;
    }
    const retry = (state.snapshot?.retrying ?? []).find((r) => r.identifier === this.id);
    const last = (state.snapshot?.history ?? []).find((r) => r.identifier === this.id);
    setChildren(this.session,
      retry ? h('p', {}, `Retry ${retry.attempt} due ${formatTimestamp(retry.dueAt)}${retry.error ? ` after: ${retry.error}` : ''}`) : null,
      last
        ? h('dl', { class: 'facts' },
          fact('Last run', `${humanize(last.status ?? 'finished')} at ${formatTimestamp(last.finishedAt)}`),
          fact('Host', last.workerHost || 'local'),
          fact('Tokens', formatTokens(last.tokens ?? 0)),
          last.error ? fact('Error', last.error) : null)
        : null,
      !retry && !last ? empty(issue?.lastMessage ? `Last message: ${issue.lastMessage}` : 'No agent is working on this issue.') : null);
  }

  fillSelect(select, values, current, label) {
    if (document.activeElement === select) return;
    const wanted = values.includes(current) ? values : [...values, current];
    const same = select.options.length === wanted.length && wanted.every((v, i) => select.options[i].value === v);
    if (!same) setChildren(select, wanted.map((v) => h('option', { value: v }, label(v))));
    select.value = current;
    select.dataset.current = current;
  }

  async pick(select, what) {
    const value = select.value;
    const previous = select.dataset.current ?? '';
    select.disabled = true;
    try {
      if (what === 'profile') await api.setProfile(this.id, value);
      else await api.setBackend(this.id, value);
      select.dataset.current = value;
      toast('ok', value ? `${this.id} now uses ${what} ${value}` : `${this.id} uses the default ${what}`);
      this.loadIssue();
    } catch (err) {
      select.value = previous;
      toast('error', describeError(err));
    } finally {
      select.disabled = false;
    }
  }

  async reloadLog() {
    try {
      const entries = await api.logs(this.id);
      if (this.destroyed) return;
      for (const entry of Array.isArray(entries) ? entries : []) this.appendLog(entry);
    } catch (err) {
      if (this.destroyed) return;
      this.logStatus.textContent = `Log unavailable: ${describeError(err)}`;
    }
  }

  startLog() {
    let wasDown = false;
    this.stream = new LiveStream({
      url: () => streamUrl(`/issues/${encodeURIComponent(this.id)}/log-stream`),
      browserRetry: true,
      on: {
        log: (event) => {
          let entry;
          try {
            entry = JSON.parse(event.data);
          } catch {
            entry = { level: 'warn', event: 'warn', message: `(unreadable log line: ${String(event.data).slice(0, 200)})`, time: '' };
          }
          this.appendLog(entry);
        },
        gap: () => {
          this.logList.appendChild(h('li', { class: 'log-gap', dataset: { testid: 'log-gap' } }, 'Some lines were skipped: the server no longer had them. Reloading the log…'));
          this.reloadLog();
        },
      },
      onStatus: ({ state }) => {
        if (this.destroyed) return;
        const labels = { connecting: 'Connecting…', open: 'Following live', down: 'Reconnecting…', stopped: 'Stopped' };
        this.logStatus.textContent = labels[state] ?? state;
        this.logStatus.dataset.state = state;
        if (state === 'down') wasDown = true;
        if (state === 'open' && wasDown) {
          wasDown = false;
          this.reloadLog();
        }
      },
    });
    this.reloadLog().then(() => {
      if (!this.destroyed) this.stream.start();
    });
  }

  appendLog(entry) {
    if (!this.buffer.add(entry)) return;
    while (this.logList.children.length >= this.buffer.limit) this.logList.firstElementChild.remove();
    this.logList.appendChild(logLine(entry));
    if (this.follow.checked) this.logList.scrollTop = this.logList.scrollHeight;
  }

  async loadSublogs(button) {
    button.disabled = true;
    try {
      const entries = await api.sublogs(this.id);
      if (this.destroyed) return;
      const groups = groupBySession(Array.isArray(entries) ? entries : []);
      if (groups.length === 0) {
        setChildren(this.sublogs, empty('No sub-agent session logs for this issue.', { dataset: { testid: 'sublogs-empty' } }));
        return;
      }
      setChildren(this.sublogs, groups.map((g) => this.sublogGroup(g, button)));
    } catch (err) {
      if (!this.destroyed) setChildren(this.sublogs, h('p', { class: 'banner error', role: 'alert' }, `Could not load the sub-agent logs: ${describeError(err)}`));
    } finally {
      button.disabled = false;
      button.textContent = 'Reload sub-agent logs';
    }
  }

  sublogGroup(group, reloadButton) {
    const remove = h('button', { type: 'button', class: 'button small danger', dataset: { testid: 'sublog-delete' } }, 'Delete');
    remove.addEventListener('click', async (event) => {
      event.preventDefault();
      const { ok } = await confirmAction({ title: 'Delete this session log?', text: `Session ${group.sessionId || '(none)'} of ${this.id}.`, okLabel: 'Delete' });
      if (!ok) return;
      const done = await act(remove, () => api.clearSublog(this.id, group.sessionId), 'Session log deleted');
      if (done !== undefined) this.loadSublogs(reloadButton);
    });
    return h('details', { class: 'sublog', dataset: { testid: 'sublog-session', sessionId: group.sessionId } },
      h('summary', {},
        h('span', { class: 'mono' }, group.sessionId || '(no session id)'),
        ` · ${group.entries.length} lines · ${formatClock(group.firstTime)}–${formatClock(group.lastTime)} `),
      h('div', { class: 'row end' }, remove),
      h('ol', { class: 'log' }, group.entries.map(logLine)));
  }

  destroy() {
    this.destroyed = true;
    this.stream?.stop();
  }
}

function fact(term, value) {
  return [h('dt', {}, term), h('dd', {}, value)];
}

/** One rendered log entry. */
export function logLine(entry) {
  const level = ['info', 'warn', 'error'].includes(entry.level) ? entry.level : 'info';
  return h('li', { class: ['log-line', `level-${level}`, `event-${entry.event}`], dataset: { testid: 'log-line', event: entry.event ?? '' } },
    h('time', { datetime: entry.time ?? '' }, formatClock(entry.time)),
    h('span', { class: 'log-event' }, entry.event ?? ''),
    entry.tool ? h('span', { class: 'log-tool' }, entry.tool) : null,
    h('span', { class: 'log-message' }, entry.message ?? ''),
    entry.detail ? h('details', { class: 'log-detail' }, h('summary', {}, 'detail'), h('pre', {}, entry.detail)) : null);
}
