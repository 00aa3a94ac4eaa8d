'use strict';
/*
 * Doppel's dashboard: plain JavaScript, no framework, no build step, nothing loaded from elsewhere.
 *
 * Data: GET /api/v1/vms, /api/v1/backup and /api/v1/families every second, /api/v1/host now and then,
 * and the event stream GET /api/v1/events (Server-Sent Events). The stream is read with fetch() rather
 * than EventSource because EventSource cannot send the Authorization header the daemon's TCP listener
 * requires; the token comes from the URL fragment (#token=..., never sent to the server) or a prompt,
 * and stays in this tab's sessionStorage.
 *
 * The DOM carries data-* attributes (data-vm, data-state, data-protection, data-chart-vm, data-points,
 * data-type ...) that tests read instead of screenshots: keep them stable.
 */

const WINDOW_MS = 60_000;
const POLL_MS = 1000;
const CHART_MS = 500;
const MAX_EVENTS = 150;
const TOKEN_KEY = 'doppel-token';

/** Charted, not listed: one per checkpoint. */
const QUIET = new Set(['checkpoint', 'backup-epoch']);
/** Listed dimmed: progress chatter. */
const MINOR = new Set(['protection-progress', 'backup-log', 'protection-retry', 'backup-armed']);
/** Listed highlighted: a VM lost its backup, its primary or its QEMU. */
const ALARM = new Set(['failover', 'failover-refused', 'backup-lost', 'primary-lost', 'vm-exited']);
/** Drawn as a vertical line on the VM's chart. */
const MARKED = new Set(['protected', 'protection-resumed', 'backup-lost', 'primary-lost', 'failover']);
/** Fetch the tables at once after these, rather than at the next poll. */
const REFRESH = new Set(['protected', 'unprotected', 'failover', 'backup-lost', 'primary-lost', 'vm-started', 'vm-stopped',
  'vm-exited', 'family-started', 'family-ended', 'family-adopted', 'family-lost', 'fork', 'clone-exited']);

// ------------------------------------------------------------------------------------------ DOM helpers

const SVG_NS = 'http://www.w3.org/2000/svg';
const $ = sel => document.querySelector(sel);

function build(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined && v !== false) node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}
const el = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
const svg = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

/** A state as a coloured label: PRIMARY_LOST shows as "primary lost" with class s-primary-lost. */
function badge(state) {
  const s = String(state).toLowerCase().replace(/_/g, '-');
  return el('span', { class: 'badge s-' + s.replace(/\s+/g, '-') }, s.replace(/-/g, ' '));
}

function ms(v) {
  if (v === null || v === undefined || Number.isNaN(v) || v < 0) return '–';
  if (v >= 10_000) return (v / 1000).toFixed(0) + ' s';
  if (v >= 1000) return (v / 1000).toFixed(1) + ' s';
  if (v >= 10) return Math.round(v) + ' ms';
  return v.toFixed(1) + ' ms';
}

const clock = t => new Date(t).toLocaleTimeString([], { hour12: false });
const sleep = t => new Promise(r => setTimeout(r, t));

function setPill(sel, key, value, text, title) {
  const p = $(sel);
  p.dataset[key] = value;
  p.textContent = text;
  p.title = title || '';
}

// ---------------------------------------------------------------------------------------------- auth

let token = null;

/** A 401, with the token the request carried: an answer to a request sent before the token changed is stale. */
class Unauthorized extends Error {
  constructor(path, sentToken) {
    super(path + ': 401');
    this.sentToken = sentToken;
  }
}

function takeTokenFromUrl() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);   // out of the address bar
  }
  token = sessionStorage.getItem(TOKEN_KEY);
}

function headers(extra) {
  return token ? { ...extra, Authorization: 'Bearer ' + token } : { ...extra };
}

async function getJson(path) {
  const sent = token;
  const res = await fetch(path, { headers: headers(), cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized(path, sent);
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

function askForToken(err) {
  if (err.sentToken !== token) return;   // refused the token we had before: the current one is still untried
  setPill('#api', 'api', 'unauthorized', 'API: token needed');
  const form = $('#login');
  if (form.hidden) {
    form.hidden = false;
    $('#token').focus();
  }
}

function useToken(ev) {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('#token').value.trim());
  tokenChanged();
}

/** A new token (typed, or a #token=... pasted into this tab's address bar): use it at once. */
function tokenChanged() {
  takeTokenFromUrl();
  if (!token) return;
  $('#login').hidden = true;
  loadHost();
  poll();
}

// ------------------------------------------------------------------------------------- chart series

/** Per VM: checkpoint pauses (from events) and backup lag (polled), [time, ms], plus event marks. */
const series = new Map();
/** The protections of the last poll, by VM. */
let protections = new Map();

function seriesOf(vm) {
  let s = series.get(vm);
  if (!s) {
    s = { pauses: [], lags: [], marks: [], lastPause: null, epoch: null };
    series.set(vm, s);
  }
  return s;
}

function prune(s, now) {
  const cut = now - WINDOW_MS - 5000;
  for (const a of [s.pauses, s.lags, s.marks]) {
    let i = 0;
    while (i < a.length && a[i][0] < cut) i++;
    a.splice(0, i);
  }
}

// -------------------------------------------------------------------------------------------- events

function onEvent(e) {
  const now = Date.now();
  if (e.type === 'checkpoint') {
    const s = seriesOf(e.vm);
    s.pauses.push([now, e.data.pauseMs]);
    s.lastPause = e.data.pauseMs;
    s.epoch = e.epoch;
    return;
  }
  if (QUIET.has(e.type)) return;
  if (e.vm && MARKED.has(e.type)) seriesOf(e.vm).marks.push([now, e.type]);
  addEvent(e);
  if (REFRESH.has(e.type)) pollSoon();
}

function describe(e) {
  const d = e.data || {};
  const parts = [];
  switch (e.type) {
    case 'failover':
      parts.push(`restored as ${d.restoredAs} from epoch ${e.epoch} in ${ms(d.failoverMs)}`);
      break;
    case 'protected':
      parts.push('backup ' + d.backup);
      break;
    case 'fork':
      parts.push(`${(d.clones || []).length} clone(s) in ${ms(d.forkMs)}, parent paused ${ms(d.parentPauseMs)}`);
      break;
    case 'protection-progress':
    case 'backup-log':
      parts.push(d.message);
      break;
    default:
      for (const [k, v] of Object.entries(d)) parts.push(k + ' ' + (typeof v === 'object' ? JSON.stringify(v) : v));
      if (e.epoch >= 0) parts.push('epoch ' + e.epoch);
  }
  if (e.cause) parts.push(e.cause);
  return parts.filter(p => p !== undefined && p !== '').join(' · ');
}

function addEvent(e) {
  const list = $('#events');
  const cls = ALARM.has(e.type) ? 'alarm' : MINOR.has(e.type) ? 'minor' : null;
  list.prepend(el('li', {
    class: cls, 'data-type': e.type, 'data-vm': e.vm, 'data-id': e.id, 'data-epoch': e.epoch >= 0 ? e.epoch : null,
    'data-restored-as': e.data && e.data.restoredAs,
  },
  el('time', { datetime: new Date(e.timeMillis).toISOString() }, clock(e.timeMillis)),
  el('span', { class: 'type' }, e.type),
  e.vm ? el('span', { class: 'vm' }, e.vm) : null,
  el('span', { class: 'detail' }, describe(e))));
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  $('#events-empty').hidden = true;
}

function parseSse(block) {
  const msg = { id: null, event: null, data: '' };
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;   // comment: the greeting, keepalives
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') msg.data += (msg.data ? '\n' : '') + value;
    else if (field === 'id') msg.id = value;
    else if (field === 'event') msg.event = value;
  }
  return msg;
}

/** Reads the event stream for ever; on a break it reconnects with Last-Event-ID and misses nothing. */
async function stream() {
  let lastId = null;
  for (;;) {
    try {
      const sent = token;
      const h = headers({ Accept: 'text/event-stream' });
      if (lastId !== null) h['Last-Event-ID'] = lastId;
      const res = await fetch('/api/v1/events', { headers: h, cache: 'no-store' });
      if (res.status === 401) throw new Unauthorized('/api/v1/events', sent);
      if (!res.ok || !res.body) throw new Error('/api/v1/events: HTTP ' + res.status);
      setPill('#stream', 'stream', 'live', 'events: live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const msg = parseSse(buf.slice(0, end));
          buf = buf.slice(end + 2);
          if (msg.id !== null) lastId = msg.id;
          if (!msg.data) continue;
          try {
            onEvent(JSON.parse(msg.data));
          } catch (err) {
            console.warn('event not shown', err, msg.data);
          }
        }
      }
      setPill('#stream', 'stream', 'down', 'events: reconnecting', 'the daemon ended the stream');
    } catch (err) {
      if (err instanceof Unauthorized) askForToken(err);
      setPill('#stream', 'stream', 'down', 'events: reconnecting', String(err));
    }
    await sleep(2000);
  }
}

// ----------------------------------------------------------------------------------------- polling

let pollTimer = null;
let polling = false;
let pollAgain = false;

async function poll() {
  if (polling) {
    pollAgain = true;
    return;
  }
  polling = true;
  clearTimeout(pollTimer);
  try {
    const [vms, backup, families] = await Promise.all(
      [getJson('/api/v1/vms'), getJson('/api/v1/backup'), getJson('/api/v1/families')]);
    const now = Date.now();
    protections = new Map(vms.filter(v => v.protection).map(v => [v.name, v.protection]));
    for (const [vm, p] of protections) {
      if (p.lagMs >= 0) seriesOf(vm).lags.push([now, p.lagMs]);
    }
    renderVms(vms);
    renderBackup(backup);
    renderFamilies(families);
    renderCharts();
    setPill('#api', 'api', 'ok', 'API');
    $('#login').hidden = true;
  } catch (err) {
    if (err instanceof Unauthorized) askForToken(err);
    else setPill('#api', 'api', 'down', 'API unreachable', String(err));
  } finally {
    polling = false;
    pollTimer = setTimeout(poll, pollAgain ? 0 : POLL_MS);
    pollAgain = false;
  }
}

function pollSoon() {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, 50);
}

async function loadHost() {
  try {
    const h = await getJson('/api/v1/host');
    const host = $('#host');
    host.dataset.host = h.host;
    host.textContent = `${h.host} · ${h.accelerator} · doppeld pid ${h.daemonPid} · up since ${new Date(h.startedAtMillis).toLocaleString([], { hour12: false })}`;
    host.title = host.textContent;
    document.title = 'Doppel · ' + h.host;
  } catch (err) {
    if (err instanceof Unauthorized) askForToken(err);
  }
}

// ------------------------------------------------------------------------------------------ tables

function renderVms(vms) {
  vms.sort((a, b) => a.name.localeCompare(b.name));
  $('#vms tbody').replaceChildren(...vms.map(vmRow));
  $('#vms-empty').hidden = vms.length > 0;
}

function vmRow(v) {
  const p = v.protection;
  const num = (text, title) => el('td', { class: 'num', title }, text);
  return el('tr', { 'data-vm': v.name, 'data-state': v.state, 'data-origin': v.origin, 'data-protection': p ? p.state : 'none' },
    el('td', { class: 'name' }, v.name),
    el('td', {}, badge(v.state), el('div', { class: 'sub' }, 'pid ' + v.pid)),
    el('td', {}, v.origin),
    el('td', { class: 'protection' },
      p ? badge(p.state) : el('span', { class: 'muted' }, 'not protected'),
      p ? el('div', { class: 'sub' }, 'to ', el('code', {}, p.backup), p.lostBackups > 0 ? ` · lost ${p.lostBackups}×` : null) : null,
      p && p.lastProblem && p.state !== 'PROTECTED' ? el('div', { class: 'problem', title: p.lastProblem }, p.lastProblem) : null),
    num(p ? p.checkpoints : '–'),
    num(p ? ms(p.pauseP50Ms) : '–'),
    num(p ? ms(p.pauseP99Ms) : '–', p ? 'max ' + ms(p.maxPauseMs) : null),
    num(p ? ms(p.lagMs) : '–'));
}

function renderBackup(b) {
  const box = $('#backup');
  if (!b || !b.settings) {
    box.replaceChildren(el('p', { class: 'empty', 'data-backup': 'off' }, 'This host serves as no backup.'));
    return;
  }
  const s = b.settings;
  const host = s.listen.slice(0, s.listen.lastIndexOf(':'));
  const line = el('p', { 'data-backup': 'on', 'data-port': b.port }, 'Serving on ', el('code', {}, host + ':' + b.port),
    ` · primary lost after ${s.detectionMs} ms of silence · ${s.tls ? 'TLS' : 'plain TCP'}`);
  if (!b.vms.length) {
    box.replaceChildren(line, el('p', { class: 'empty' }, 'No primary protects a VM to this host.'));
    return;
  }
  box.replaceChildren(line, el('div', { class: 'scroll' }, el('table', {},
    el('thead', {}, el('tr', {}, el('th', {}, 'VM'), el('th', {}, 'State'), el('th', { class: 'num' }, 'Committed epoch'),
      el('th', {}, 'Epochs'))),
    el('tbody', {}, b.vms.map(v => el('tr', { 'data-backup-vm': v.vm, 'data-state': v.state },
      el('td', { class: 'name' }, v.vm), el('td', {}, badge(v.state)), el('td', { class: 'num' }, v.committedEpoch),
      el('td', { class: 'summary' }, v.summary)))))));
}

function renderFamilies(roots) {
  const box = $('#families');
  if (!roots.length) {
    box.replaceChildren(el('p', { class: 'empty' }, 'No fork families.'));
    return;
  }
  box.replaceChildren(el('ul', { class: 'tree' }, roots.map(member)));
}

function member(m) {
  const state = m.running ? badge('running') : el('span', { class: 'badge s-exited' }, m.exitCode === null ? 'gone' : 'exit ' + m.exitCode);
  return el('li', { 'data-member': m.name, 'data-running': String(m.running), 'data-clone-id': m.cloneId, 'data-exit-code': m.exitCode },
    el('div', { class: 'member' }, el('span', { class: 'name' }, m.name), state,
      el('span', { class: 'muted' }, [m.ip, 'pid ' + m.pid, m.cloneId > 0 ? 'clone ' + m.cloneId : null].filter(Boolean).join(' · '))),
    m.children.length ? el('ul', {}, m.children.map(member)) : null);
}

// ------------------------------------------------------------------------------------------ charts

const W = 640, H = 170, L = 50, R = 12, T = 12, B = 22;

/** One chart per protected VM, and per VM whose pauses are still in the window (protection just ended). */
function renderCharts() {
  const now = Date.now();
  const names = new Set(protections.keys());
  for (const [vm, s] of series) {
    prune(s, now);
    if (s.pauses.length) names.add(vm);
  }
  const box = $('#charts');
  const old = new Map([...box.children].map(f => [f.dataset.chartVm, f]));
  for (const vm of [...names].sort()) {
    const f = old.get(vm) || newChart(vm);
    old.delete(vm);
    drawChart(f, seriesOf(vm), protections.get(vm), now);
    box.append(f);   // (re)appended in name order
  }
  old.forEach(f => f.remove());
  $('#charts-empty').hidden = names.size > 0;
}

function newChart(vm) {
  return el('figure', { class: 'chart', 'data-chart-vm': vm },
    el('figcaption', {}, el('span', { class: 'name' }, vm), el('span', { class: 'state' }), el('span', { class: 'stats muted' }),
      el('span', { class: 'legend' }, el('i', { class: 'key pause' }), 'pause ', el('i', { class: 'key lag' }), 'lag')),
    svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `checkpoint pause and backup lag of ${vm}` }));
}

/** Nice round upper bound for the y axis (1, 2, 5 × 10^n ms). */
function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  return [1, 2, 5, 10].map(m => m * p).find(n => n >= v);
}

/** An SVG path through the points, broken where samples are further apart than gapMs. */
function path(points, x, y, gapMs) {
  let d = '';
  let prev = null;
  for (const [t, v] of points) {
    d += (prev === null || t - prev > gapMs ? 'M' : 'L') + x(t).toFixed(1) + ' ' + y(v).toFixed(1);
    prev = t;
  }
  return d;
}

function drawChart(f, s, p, now) {
  const from = now - WINDOW_MS;
  const pauses = s.pauses.filter(([t]) => t >= from);
  const lags = s.lags.filter(([t]) => t >= from);
  const marks = s.marks.filter(([t]) => t >= from);
  const top = niceMax(Math.max(10, ...pauses.map(a => a[1]), ...lags.map(a => a[1])));
  const x = t => L + (t - from) / WINDOW_MS * (W - L - R);
  const y = v => T + (1 - Math.min(v, top) / top) * (H - T - B);

  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const v = top * i / 4;
    parts.push(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      svg('text', { class: 'axis', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, v === 0 ? '0' : ms(v)));
  }
  for (let sec = 60; sec >= 0; sec -= 15) {
    parts.push(svg('text', { class: 'axis', x: x(now - sec * 1000), y: H - 6, 'text-anchor': sec === 60 ? 'start' : sec === 0 ? 'end' : 'middle' },
      sec === 0 ? 'now' : `−${sec} s`));
  }
  marks.forEach(([t, type], i) => {
    // Labels left of their line near the right edge, and on three rows: marks come in bursts (lost, failover).
    const right = x(t) > W - R - 90;
    parts.push(svg('g', { class: 'mark m-' + type, 'data-mark': type },
      svg('line', { x1: x(t), x2: x(t), y1: T, y2: H - B }),
      svg('text', { x: x(t) + (right ? -3 : 3), y: T + 9 + 11 * (i % 3), 'text-anchor': right ? 'end' : 'start' }, type)));
  });
  parts.push(svg('path', { class: 'lag', d: path(lags, x, y, 3 * POLL_MS) }),
    svg('path', { class: 'pause', d: path(pauses, x, y, 2000) }));
  if (pauses.length) {
    const [t, v] = pauses[pauses.length - 1];
    parts.push(svg('circle', { class: 'pause', cx: x(t), cy: y(v), r: 2.5 }));
  }
  f.querySelector('svg').replaceChildren(...parts);

  const last = lags.length ? lags[lags.length - 1][1] : null;
  const lagNow = p ? p.lagMs : null;
  f.dataset.points = pauses.length;
  f.dataset.lagPoints = lags.length;
  f.dataset.protection = p ? p.state : 'none';
  if (s.lastPause !== null) f.dataset.lastPauseMs = s.lastPause.toFixed(3);
  if (last !== null) f.dataset.lastLagMs = last;
  if (s.epoch !== null) f.dataset.epoch = s.epoch;
  f.querySelector('.state').replaceChildren(badge(p ? p.state : 'not protected'));
  f.querySelector('.stats').textContent = [
    'pause ' + ms(s.lastPause),
    p ? `p50 ${ms(p.pauseP50Ms)} · p99 ${ms(p.pauseP99Ms)}` : null,
    'lag ' + ms(lagNow),
    s.epoch !== null ? 'epoch ' + s.epoch : null,
  ].filter(Boolean).join(' · ');
}

// -------------------------------------------------------------------------------------------- start

takeTokenFromUrl();
$('#login').addEventListener('submit', useToken);
window.addEventListener('hashchange', tokenChanged);
loadHost();
setInterval(loadHost, 30_000);
poll();
setInterval(renderCharts, CHART_MS);
stream();
