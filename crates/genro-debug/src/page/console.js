// The genro-debug web view: the same protocol as the genro-debug CLI. The secret is used once,
// to answer the challenge with WebCrypto's HMAC-SHA256, and is never stored.
'use strict';

const $ = (id) => document.getElementById(id);
let socket = null;
let waiting = [];
let refreshing = null;

function setStatus(text, isError) {
  const status = $('status');
  status.textContent = text;
  status.className = isError ? 'error' : '';
}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function sign(secret, nonce, context) {
  const encoder = new TextEncoder();
  const key = await crypto.subtle.importKey(
    'raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return hex(await crypto.subtle.sign('HMAC', key, encoder.encode(nonce + context)));
}

function call(message) {
  return new Promise((resolve, reject) => {
    waiting.push({ resolve, reject });
    socket.send(JSON.stringify(message));
  });
}

// Every value from the server is written with textContent: request paths and errors are the
// client's input, never markup.
function cell(row, text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function button(td, label, data, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  for (const [k, v] of Object.entries(data)) b.dataset[k] = v;
  b.addEventListener('click', onClick);
  td.appendChild(b);
}

function seconds(s) {
  return s < 10 ? s.toFixed(2) + 's' : s.toFixed(0) + 's';
}

async function show(id) {
  const reply = await call({ type: 'show', id });
  $('detail').textContent = reply.type === 'request'
    ? JSON.stringify(reply.request, null, 2) : reply.message;
}

// The async stack of the request's future: the server traces it (rate-limited).
async function trace(id) {
  $('detail').textContent = `tracing ${id}…`;
  const reply = await call({ type: 'show', id, trace: true });
  if (reply.type !== 'request') { $('detail').textContent = reply.message; return; }
  const r = reply.request;
  const w = r.waiting_on;
  $('detail').textContent = [
    `${r.method} ${r.path}, ${seconds(r.age_s)}, ${r.phase}, error id ${r.id}`,
    '',
    w.trace !== null && w.trace !== undefined
      ? `waiting on (traced ${seconds(w.age_s)} ago):\n${w.trace}`
      : `waiting on: unavailable: ${w.unavailable}`,
  ].join('\n');
}

async function attach(id) {
  const reply = await call({ type: 'attach', id });
  if (reply.type !== 'attached') { $('detail').textContent = reply.message; return; }
  const h = reply.held;
  $('detail').textContent = [
    `${h.request.method} ${h.request.path} → ${h.status} (${h.kind}, ${h.error_type}), error id ${h.request.id}`,
    `held ${seconds(h.held_s)}, released anyway in ${seconds(h.release_in_s)}`,
    '', 'error chain:', ...h.chain.map((e, i) => `  ${i}: ${e}`),
    '', 'annotations:', ...h.request.annotations.map(([k, v]) => `  ${k} = ${v}`),
    '', 'backtrace:', h.backtrace || '  (none captured: run the server with RUST_BACKTRACE=1)',
  ].join('\n');
}

async function act(message) {
  const reply = await call(message);
  setStatus(reply.message, reply.type === 'error');
  await refresh();
}

async function refresh() {
  const ls = await call({ type: 'ls' });
  const body = $('requests').tBodies[0];
  body.replaceChildren();
  for (const r of ls.requests) {
    const row = body.insertRow();
    row.dataset.id = r.id;
    if (r.phase === 'held') row.className = 'held';
    cell(row, r.id, 'id');
    cell(row, r.method);
    cell(row, r.target);
    cell(row, seconds(r.age_s));
    cell(row, r.phase);
    cell(row, String(r.annotations));
    const actions = cell(row, '');
    button(actions, 'show', { show: r.id }, () => show(r.id));
    button(actions, 'trace', { trace: r.id }, () => trace(r.id));
    button(actions, 'cancel', { cancel: r.id }, () => act({ type: 'cancel', id: r.id }));
  }
  $('in-flight-count').textContent = `(${ls.requests.length})`;
  const held = await call({ type: 'held' });
  const heldBody = $('held').tBodies[0];
  heldBody.replaceChildren();
  const list = held.type === 'held_list' ? held.held : [];
  for (const h of list) {
    const row = heldBody.insertRow();
    row.dataset.id = h.request.id;
    cell(row, h.request.id, 'id');
    cell(row, String(h.status));
    cell(row, h.kind);
    cell(row, h.message);
    cell(row, seconds(h.held_s));
    cell(row, seconds(h.release_in_s));
    const actions = cell(row, '');
    const id = h.request.id;
    button(actions, 'attach', { attach: id }, () => attach(id));
    button(actions, 'release', { release: id }, () => act({ type: 'continue', id }));
  }
  $('held-count').textContent = held.type === 'held_list' ? `(${list.length})` : '(holding is off)';
}

function login(event) {
  event.preventDefault();
  const secret = $('secret').value;
  $('secret').value = '';
  if (socket) socket.close();
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  socket = new WebSocket(`${scheme}://${location.host}/ws`);
  setStatus('connecting…');
  let state = 'challenge';
  socket.onmessage = async (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'refused') {
      setStatus(`refused: ${message.message}`, true);
      return;
    }
    if (state === 'challenge' && message.type === 'challenge') {
      state = 'login';
      const answer = await sign(secret, message.nonce, message.context);
      socket.send(JSON.stringify({ type: 'login', answer }));
    } else if (state === 'login' && message.type === 'welcome') {
      state = 'ready';
      setStatus('connected');
      $('login').hidden = true;
      $('app').hidden = false;
      await refresh();
      refreshing = setInterval(() => refresh().catch(() => {}), 1000);
    } else {
      const next = waiting.shift();
      if (next) next.resolve(message);
    }
  };
  socket.onclose = () => {
    clearInterval(refreshing);
    for (const w of waiting) w.reject(new Error('closed'));
    waiting = [];
    if (state === 'ready') setStatus('disconnected', true);
    $('login').hidden = false;
  };
}

document.addEventListener('DOMContentLoaded', () => {
  if (!window.crypto || !crypto.subtle) {
    setStatus('this page needs a secure context (http://127.0.0.1, http://localhost, or an SSH tunnel)', true);
  }
  $('login').addEventListener('submit', login);
});
