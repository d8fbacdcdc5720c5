// app.js - the operations console: sign-in, navigation, page lifetime.
// Pages (pages/*.js) export render(main, ctx); ctx gives them timers and
// loaders that stop when the operator navigates away, so a page that polls
// never outlives itself.
import { api, can, describe, forgetKey, saveKey, session } from './api.js';
import { announce, clear, h, state } from './ui.js';
import * as overview from './pages/overview.js';
import * as messages from './pages/messages.js';
import * as message from './pages/message.js';
import * as replay from './pages/replay.js';
import * as suppressions from './pages/suppressions.js';
import * as webhooks from './pages/webhooks.js';
import * as domains from './pages/domains.js';
import * as keys from './pages/keys.js';

const PAGES = {
  overview: { mod: overview, scope: 'read', title: 'Overview' },
  messages: { mod: messages, scope: 'read', title: 'Messages' },
  message: { mod: message, scope: 'read', title: 'Message' },
  replay: { mod: replay, scope: 'admin', title: 'Replay' },
  suppressions: { mod: suppressions, scope: 'read', title: 'Suppressions' },
  webhooks: { mod: webhooks, scope: 'admin', title: 'Webhooks' },
  domains: { mod: domains, scope: 'admin', title: 'Domains' },
  keys: { mod: keys, scope: 'admin', title: 'API keys' },
};

const main = document.getElementById('main');
let current = null; // the page context alive now

class PageContext {
  constructor() {
    this.alive = true;
    this.timers = new Set();
  }
  // Runs fn after ms unless the page is gone.
  later(ms, fn) {
    const t = setTimeout(() => { this.timers.delete(t); if (this.alive) fn(); }, ms);
    this.timers.add(t);
  }
  // Calls fn every ms while the page lives (waits for each call to finish).
  every(ms, fn) {
    const tick = async () => {
      if (!this.alive) return;
      try { await fn(); } catch (e) { /* the page shows its own state */ }
      this.later(ms, tick);
    };
    this.later(ms, tick);
  }
  // Loads with fn() and shows progress/errors in `into`; retries what can
  // be retried (network, 503) until it works or the page goes away.
  async load(into, fn, what) {
    clear(into).append(state('Loading ' + what + '…', 'loading'));
    for (let wait = 1000; this.alive; wait = Math.min(wait * 2, 15000)) {
      try {
        return await fn();
      } catch (e) {
        if (!this.alive) return undefined;
        const d = describe(e);
        if (e.status === 401) { signOut(d.text); return undefined; }
        clear(into).append(state(d.text, 'error'));
        if (!d.retry) return undefined;
        await new Promise((r) => this.later(wait, r));
      }
    }
    return undefined;
  }
  stop() {
    this.alive = false;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

function route() {
  const hash = location.hash || '';
  if (!hash.startsWith('#/')) return null;
  const [name, ...rest] = hash.slice(2).split('/');
  return { name: name || 'overview', arg: rest.map(decodeURIComponent).join('/') };
}

function updateNav(name) {
  const nav = document.getElementById('nav');
  nav.hidden = !session.key;
  for (const a of nav.querySelectorAll('a[data-page]')) {
    const li = a.parentElement;
    li.hidden = !can(a.dataset.scope);
    const active = a.dataset.page === name || (name === 'message' && a.dataset.page === 'messages');
    if (active) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const who = document.getElementById('who');
  who.hidden = !session.key;
  document.getElementById('who-name').textContent = session.key
    ? (session.name ? session.name + ' · ' : '') + session.scopes.join(', ') : '';
}

function show() {
  if (current) current.stop();
  current = new PageContext();
  if (!session.key || !session.scopes.length) {
    updateNav('');
    renderSignIn();
    return;
  }
  let r = route();
  if (r === null) {
    if (location.hash === '#main') return; // the skip link
    r = { name: can('read') ? 'overview' : 'replay', arg: '' };
  }
  const page = PAGES[r.name];
  updateNav(r.name);
  clear(main);
  if (!page) {
    document.title = 'Not found · mailferry';
    main.append(h('h1', {}, 'Not found'), state('The console has no page called “' + r.name + '”.'));
    return;
  }
  document.title = page.title + ' · mailferry';
  if (!can(page.scope)) {
    main.append(h('h1', {}, page.title), state('This API key’s scopes (' + session.scopes.join(', ') +
      ') do not allow this page; it needs “' + page.scope + '”.', 'error'));
    return;
  }
  page.mod.render(main, current, r.arg);
}

function renderSignIn(message) {
  document.title = 'Sign in · mailferry';
  const input = h('input', { type: 'password', id: 'key', name: 'key', autocomplete: 'off', spellcheck: 'false',
    required: true, placeholder: 'mf_…', 'aria-describedby': 'key-help' });
  const err = h('p', { class: 'state error', id: 'signin-error', role: 'alert', hidden: !message }, message || '');
  const form = h('form', { class: 'card signin', id: 'signin' },
    h('h1', {}, 'Sign in'),
    h('p', { id: 'key-help' }, 'Paste an API key (from ', h('code', {}, 'mailferry keys create'),
      '). It stays in this tab only and goes to the relay as a bearer token; no cookie is set.'),
    h('div', { class: 'field' }, h('label', { for: 'key' }, 'API key'), input),
    err,
    h('button', { type: 'submit', id: 'signin-submit' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    saveKey(key);
    err.hidden = true;
    const ok = await whoami();
    if (!ok.ok) {
      forgetKey();
      err.textContent = ok.text;
      err.hidden = false;
      input.focus();
      return;
    }
    announce('Signed in');
    if (!route()) location.hash = can('read') ? '#/overview' : '#/replay';
    else show();
  });
  clear(main).append(form);
  input.focus();
}

async function whoami() {
  try {
    const me = await api('GET', '/v1/keys/self');
    session.scopes = me.scopes || [];
    session.name = me.name || '';
    session.id = me.id;
    return { ok: true };
  } catch (e) {
    return { ok: false, text: e.status === 401 ? 'That key is not known to this relay, or it was revoked.' : describe(e).text };
  }
}

export function signOut(message) {
  forgetKey();
  if (current) current.stop();
  updateNav('');
  renderSignIn(message);
}

document.getElementById('signout').addEventListener('click', () => { signOut(''); announce('Signed out'); });
document.getElementById('skip').addEventListener('click', (ev) => { ev.preventDefault(); main.focus(); });
window.addEventListener('hashchange', show);

(async function start() {
  if (session.key) {
    const ok = await whoami();
    if (!ok.ok) { forgetKey(); renderSignIn(ok.text); return; }
  }
  show();
}());
