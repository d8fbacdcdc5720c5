// ui.js - building the page without HTML strings.  Every value that came
// from a sender or a receiver (subjects, addresses, tags, metadata, SMTP
// replies, bounce texts) goes into the page as a text node or an
// attribute value, never as markup: there is no innerHTML in the console.

// h('a', {href: '#/x', class: 'c'}, 'text', child, [more]) -> element.
// Attributes: class, text-like values via setAttribute; on:{event: fn};
// children: strings and numbers become text nodes; null/false are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'on') {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === 'value' && 'value' in el) {
      el.value = v;
    } else if (k === 'checked' || k === 'disabled' || k === 'hidden') {
      el[k] = !!v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// A time in the browser's zone, with UTC in its title (shown on hover).
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', {}, iso);
  return h('time', { datetime: d.toISOString(), title: 'UTC ' + d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') },
    d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' }));
}

const STATUS_CLASS = {
  delivered: 'ok', queued: 'info', scheduled: 'info', sending: 'info', deferred: 'warn',
  bounced: 'bad', failed: 'bad', verified: 'ok', pending: 'info', active: 'ok', retiring: 'warn', suppressed: 'muted', canceled: 'muted', partial: 'warn',
};

export function badge(status) {
  return h('span', { class: 'badge ' + (STATUS_CLASS[status] || 'muted') }, status || 'unknown');
}

// A table inside a focusable, labelled scroll region (narrow screens).
export function table(label, headers, rows, opts = {}) {
  const t = h('table', { class: opts.class || '' },
    h('caption', { class: opts.showCaption ? '' : 'visually-hidden' }, label),
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows));
  return h('div', { class: 'scroll', role: 'region', 'aria-label': label, tabindex: '0' }, t);
}

// Empty, loading and error states, written for a person.
export function state(text, kind = '') {
  return h('p', { class: 'state ' + kind }, text);
}

let liveTimer = 0;
export function announce(text) {
  const live = document.getElementById('live');
  live.textContent = '';
  clearTimeout(liveTimer);
  liveTimer = setTimeout(() => { live.textContent = text; }, 50);
}

export function field(label, input, hint) {
  const id = input.id || ('f-' + Math.random().toString(36).slice(2));
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hint ? h('small', {}, hint) : null);
}

// A local datetime-local value to RFC 3339 (UTC), or '' when empty.
export function localToIso(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().replace(/\.\d+Z$/, 'Z');
}

export function fmtNum(n) {
  return Number(n || 0).toLocaleString();
}
