// Checks of the dashboard's pure modules, run inside the page by WebDriver's execute/async. The
// last argument is WebDriver's callback; the result is a list of {name, ok, got, want}.
const done = arguments[arguments.length - 1];
(async () => {
  const results = [];
  const eq = (name, got, want) => {
    const ok = JSON.stringify(got) === JSON.stringify(want);
    results.push({ name, ok, got: JSON.stringify(got), want: JSON.stringify(want) });
  };

  const f = await import('/assets/js/format.js');
  eq('duration 0', f.formatDuration(0), '0s');
  eq('duration 42s', f.formatDuration(42_500), '42s');
  eq('duration minutes', f.formatDuration(125_000), '2m 05s');
  eq('duration hours', f.formatDuration(2 * 3600_000 + 3 * 60_000), '2h 03m');
  eq('duration days', f.formatDuration(4 * 86400_000 + 3600_000), '4d 01h');
  eq('duration negative', f.formatDuration(-5), '0s');
  eq('relative future', f.formatRelative(1_000_000 + 90_000, 1_000_000), 'in 1m 30s');
  eq('relative past', f.formatRelative(1_000_000 - 12_000, 1_000_000), '12s ago');
  eq('relative now', f.formatRelative(1_000_000 + 400, 1_000_000), 'now');
  eq('relative unknown', f.formatRelative(NaN, 1), '—');
  eq('tokens small', f.formatTokens(9_999), '9,999');
  eq('tokens k', f.formatTokens(15_300), '15.3k');
  eq('tokens M', f.formatTokens(4_560_000), '4.56M');
  eq('cost', f.formatCost(1.234), '$1.23');
  eq('cost null', f.formatCost(null), '—');
  eq('cost tiny', f.formatCost(0.001), '< $0.01');
  eq('split list', f.splitList(' Todo, In Progress ,,Todo\nDone '), ['Todo', 'In Progress', 'Done']);
  eq('humanize', f.humanize('input_required'), 'input required');
  eq('parse bad time', Number.isNaN(f.parseTime('yesterday')), true);

  const d = await import('/assets/js/derive.js');
  const snapshot = {
    backlogStates: ['Backlog'], activeStates: ['Todo', 'In Progress'], completionState: 'Done',
    terminalStates: ['Done', 'Cancelled'],
    running: [{ identifier: 'A-1' }], retrying: [{ identifier: 'A-2' }], paused: ['A-3'],
    inputRequired: [{ identifier: 'A-4' }],
  };
  const issues = [
    { identifier: 'A-10', state: 'todo', priority: 0 },
    { identifier: 'A-9', state: 'Todo', priority: 2 },
    { identifier: 'A-2', state: 'Todo', priority: 2 },
    { identifier: 'A-5', state: 'Triage' },
    { identifier: 'A-6', state: 'Done' },
  ];
  const columns = d.boardColumns(issues, snapshot);
  eq('board column order', columns.map((c) => c.title), ['Backlog', 'Todo', 'In Progress', 'Done', 'Cancelled', 'Triage']);
  eq('board column kinds', columns.map((c) => c.kind), ['backlog', 'active', 'active', 'done', 'done', 'other']);
  eq('board matches states case-insensitively, sorts by priority then id',
    columns[1].issues.map((i) => i.identifier), ['A-2', 'A-9', 'A-10']);
  eq('board without config', d.boardColumns([{ identifier: 'X', state: 'Open' }], null).map((c) => c.title), ['Open']);
  eq('orchestrator running', d.orchestratorStateOf('A-1', snapshot), 'running');
  eq('orchestrator retrying', d.orchestratorStateOf('A-2', snapshot), 'retrying');
  eq('orchestrator paused', d.orchestratorStateOf('A-3', snapshot), 'paused');
  eq('orchestrator input', d.orchestratorStateOf('A-4', snapshot), 'input_required');
  eq('orchestrator idle', d.orchestratorStateOf('A-7', snapshot, 'running'), 'idle');
  eq('orchestrator no snapshot', d.orchestratorStateOf('A-7', null, 'paused'), 'paused');
  eq('issue filter', d.issueMatches({ identifier: 'A-1', title: 'Fix login', labels: ['bug'] }, 'login BUG'), true);
  eq('issue filter miss', d.issueMatches({ identifier: 'A-1', title: 'Fix login', labels: [] }, 'logout'), false);

  const buffer = new d.LogBuffer(3);
  const line = (session, seq, message) => ({ sessionId: session, seq, message, time: '2026-01-01T00:00:00Z', event: 'text' });
  eq('log add', buffer.add(line('s', 1, 'a')), true);
  eq('log duplicate', buffer.add(line('s', 1, 'a again')), false);
  eq('log other session same seq', buffer.add(line('t', 1, 'b')), true);
  buffer.add(line('s', 2, 'c'));
  buffer.add(line('s', 3, 'd'));
  eq('log bounded', buffer.entries.map((e) => e.message), ['b', 'c', 'd']);
  eq('log dropped count', buffer.dropped, 1);
  eq('log evicted key can come back', buffer.add(line('s', 1, 'a')), true);
  eq('log keys without seq use content', d.logKey({ time: 't', event: 'text', message: 'm' }), d.logKey({ time: 't', event: 'text', message: 'm' }));

  const groups = d.groupBySession([
    { sessionId: 'late', seq: 2, time: '2026-01-01T00:05:00Z' },
    { sessionId: 'early', seq: 5, time: '2026-01-01T00:01:00Z' },
    { sessionId: 'late', seq: 1, time: '2026-01-01T00:04:00Z' },
    { sessionId: 'early', seq: 4, time: '2026-01-01T00:00:30Z' },
  ]);
  eq('sublog groups ordered by first entry', groups.map((g) => g.sessionId), ['early', 'late']);
  eq('sublog entries ordered by seq', groups[1].entries.map((e) => e.seq), [1, 2]);
  eq('sublog first/last', [groups[0].firstTime, groups[0].lastTime], ['2026-01-01T00:00:30Z', '2026-01-01T00:01:00Z']);

  eq('history newest first', d.sortHistory([
    { identifier: 'old', finishedAt: '2026-01-01T00:00:00Z' },
    { identifier: 'none' },
    { identifier: 'new', finishedAt: '2026-01-02T00:00:00Z' },
  ]).map((r) => r.identifier), ['new', 'old', 'none']);
  eq('retries soonest first', d.sortRetries([
    { identifier: 'b', dueAt: '2026-01-02T00:00:00Z' }, { identifier: 'a', dueAt: '2026-01-01T00:00:00Z' },
  ]).map((r) => r.identifier), ['a', 'b']);
  eq('host load capped', d.hostLoad({ running: 1, capacity: 2 }), { running: 1, capacity: 2, ratio: 0.5, label: '1 / 2' });
  eq('host load uncapped', d.hostLoad({ running: 3, capacity: 0 }).label, '3 running (no cap)');
  eq('capacity', d.capacityInUse({ counts: { running: 2 }, maxConcurrentAgents: 4 }), { running: 2, max: 4, ratio: 0.5 });
  eq('running since from elapsed', d.runningSince({ elapsedMs: 5000, startedAt: 'x' }, 100_000), 95_000);
  eq('backends include model keys', d.backendChoices({ availableModels: { claude: [], gemini: [] } }), ['claude', 'codex', 'gemini']);

  const a = await import('/assets/js/api.js');
  eq('error envelope', a.parseErrorBody(409, 'Conflict', '{"error":{"code":"conflict","message":"host build-1 is already in the pool","field":"host"}}'),
    { code: 'conflict', message: 'host build-1 is already in the pool', field: 'host' });
  eq('error without envelope', a.parseErrorBody(502, 'Bad Gateway', '<html>upstream down</html>'),
    { code: '', message: 'Bad Gateway: <html>upstream down</html>', field: '' });
  eq('error empty body', a.parseErrorBody(503, '', ''), { code: '', message: 'The server answered 503 Service unavailable', field: '' });
  eq('error describe', new a.ApiError(400, 'bad_request', 'unknown profile "x"', 'profile').describe(),
    'unknown profile "x" (HTTP 400, bad_request, field: profile)');
  eq('network error describe', new a.ApiError(0, 'network', 'Cannot reach the Itervox server for GET /state').describe(),
    'Cannot reach the Itervox server for GET /state');
  eq('stream url with token', a.streamUrl('/events', 'a b&c'), '/api/v1/events?token=a+b%26c');
  eq('stream url without token', a.streamUrl('/issues/X-1/log-stream', ''), '/api/v1/issues/X-1/log-stream');

  const l = await import('/assets/js/live.js');
  const mid = () => 0.5;
  eq('backoff first', l.backoffDelay(0, { random: mid }), 1000);
  eq('backoff doubles', [1, 2, 3].map((n) => l.backoffDelay(n, { random: mid })), [2000, 4000, 8000]);
  eq('backoff capped', l.backoffDelay(20, { random: mid }), 30000);
  eq('backoff jitter bounds', [l.backoffDelay(3, { random: () => 0 }), l.backoffDelay(3, { random: () => 0.999999 })], [6400, 9600]);

  const r = await import('/assets/js/router.js');
  eq('route root', r.matchRoute('/'), { name: 'overview', params: {} });
  eq('route board trailing slash', r.matchRoute('/board/').name, 'board');
  eq('route issue', r.matchRoute('/issues/ABC-1'), { name: 'issue', params: { id: 'ABC-1' } });
  eq('route issue encoded', r.matchRoute(`/issues/${encodeURIComponent('fix login/page')}`).params.id, 'fix login/page');
  eq('route unknown', r.matchRoute('/nope').name, 'not-found');
  eq('issue path', r.issuePath('a b'), '/issues/a%20b');

  const s = await import('/assets/js/store.js');
  const patch = s.snapshotPatch({ generatedAt: '2026-01-01T00:00:10Z' }, Date.parse('2026-01-01T00:00:00Z'));
  eq('clock offset', patch.clockOffsetMs, 10_000);
  eq('server now', s.serverNow({ clockOffsetMs: 10_000 }, 5), 10_005);
  const store = new s.Store({ a: 1, b: 2 });
  const seen = [];
  store.subscribe((_state, changed) => seen.push([...changed]));
  store.set({ a: 1 });
  store.set({ a: 3, b: 2 });
  eq('store notifies changed keys only', seen, [['a']]);

  const dom = await import('/assets/js/dom.js');
  eq('safe url https', dom.safeHttpUrl('https://linear.app/x/issue/A-1'), 'https://linear.app/x/issue/A-1');
  eq('safe url javascript', dom.safeHttpUrl('javascript:alert(1)'), null);
  eq('safe url relative', dom.safeHttpUrl('/issues/A-1'), null);
  const text = dom.h('p', {}, '<img src=x onerror=alert(1)>');
  eq('text stays text', [text.children.length, text.textContent], [0, '<img src=x onerror=alert(1)>']);

  const logs = await import('/assets/js/views/logs.js');
  eq('daemon line plain', logs.parseDaemonLine('started'), { time: '', level: '', message: 'started', fields: '' });
  eq('daemon line tracing json', logs.parseDaemonLine('{"timestamp":"2026-01-01T00:00:00Z","level":"INFO","fields":{"message":"polled","issues":3},"target":"itervox"}'),
    { time: '2026-01-01T00:00:00Z', level: 'info', message: 'polled', fields: 'target=itervox issues=3' });
  eq('daemon line json array stays text', logs.parseDaemonLine('[1,2]').message, '[1,2]');

  done(results);
})().catch((err) => done([{ name: 'exception', ok: false, got: String(err && err.stack || err), want: '' }]));
