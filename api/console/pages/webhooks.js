// Webhooks: endpoints, one endpoint's delivery log with redelivery, and
// secret rotation (the new secret is shown once).  Admin keys only.
import { api, describe, qs } from '../api.js';
import { badge, clear, h, state, table, time } from '../ui.js';

function endpoint(main, ctx, id) {
  const head = h('div', {});
  const log = h('div', { id: 'delivery-log' });
  const note = h('div', { role: 'status' });
  main.append(h('p', {}, h('a', { href: '#/webhooks' }, '← Webhooks')), head, note, log);
  const loadLog = async () => {
    const page = await ctx.load(log, () => api('GET', '/v1/webhooks/' + encodeURIComponent(id) + '/deliveries' + qs({ limit: 50 })), 'the delivery log');
    if (!page || !ctx.alive) return;
    clear(log);
    const rows = page.data || [];
    if (!rows.length) { log.append(state('Nothing was sent to this endpoint yet.')); return; }
    log.append(table('Deliveries', ['Event', 'Status', 'Attempts', 'Last answer', 'Updated', ''], rows.map((d) => {
      const b = h('button', { type: 'button', class: 'secondary small', 'aria-label': 'Send ' + (d.event_id || d.id) + ' again' }, 'Redeliver');
      b.addEventListener('click', async () => {
        b.disabled = true;
        try {
          await api('POST', '/v1/webhooks/' + encodeURIComponent(id) + '/deliveries/' + encodeURIComponent(d.id) + '/retry', {});
          loadLog();
        } catch (e) { b.disabled = false; clear(note).append(state(describe(e).text, 'error')); }
      });
      return h('tr', {}, h('td', {}, h('code', {}, d.event_id || d.id), ' ', d.event_type || ''), h('td', {}, badge(d.status)),
        h('td', { class: 'num' }, String(d.attempts || 0)),
        h('td', { class: 'reply' }, [d.last_http_status, d.last_error].filter((x) => x != null && x !== '').join(' ') || '—'),
        h('td', {}, time(d.updated_at || d.created_at)), h('td', {}, b));
    })));
  };
  (async () => {
    const w = await ctx.load(head, () => api('GET', '/v1/webhooks/' + encodeURIComponent(id)), 'the endpoint');
    if (!w || !ctx.alive) return;
    const rotate = h('button', { type: 'button', id: 'rotate', class: 'danger' }, 'Rotate secret');
    rotate.addEventListener('click', async () => {
      if (!window.confirm('Make a new signing secret? The old one keeps working for a while so receivers can switch.')) return;
      rotate.disabled = true;
      try {
        const r = await api('POST', '/v1/webhooks/' + encodeURIComponent(id) + '/rotate', {});
        clear(note).append(h('div', { class: 'card secret' }, h('h2', {}, 'New secret (shown once)'),
          h('p', {}, 'Copy it now: the relay will not show it again.'), h('code', { class: 'once' }, r.secret || '')));
      } catch (e) { clear(note).append(state(describe(e).text, 'error')); }
      rotate.disabled = false;
    });
    clear(head).append(h('div', { class: 'page-head' }, h('h1', {}, w.url), w.enabled ? h('span', { class: 'badge ok' }, 'enabled') : h('span', { class: 'badge bad' }, 'disabled')),
      h('section', { class: 'card' }, h('p', {}, 'Events: ', (w.events && w.events.length) ? w.events.join(', ') : 'all'),
        w.description ? h('p', {}, w.description) : null, h('div', { class: 'actions' }, rotate)));
    loadLog();
  })();
}

export function render(main, ctx, id) {
  if (id) { endpoint(main, ctx, id); return; }
  const list = h('div', { id: 'webhook-list' });
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Webhooks'),
    h('p', { class: 'muted' }, 'Endpoints that receive signed events.')), list);
  (async () => {
    const page = await ctx.load(list, () => api('GET', '/v1/webhooks'), 'the webhook endpoints');
    if (!page || !ctx.alive) return;
    clear(list);
    const rows = page.data || page || [];
    if (!rows.length) { list.append(state('No webhook endpoint is set up. Add one with POST /v1/webhooks.')); return; }
    list.append(table('Webhook endpoints', ['Endpoint', 'Events', 'State', 'Created'], rows.map((w) =>
      h('tr', {}, h('td', {}, h('a', { href: '#/webhooks/' + encodeURIComponent(w.id) }, w.url)),
        h('td', {}, (w.events && w.events.length) ? w.events.join(', ') : 'all'),
        h('td', {}, w.enabled ? h('span', { class: 'badge ok' }, 'enabled') : h('span', { class: 'badge bad' }, 'disabled'),
          w.failing_since ? [' ', h('span', { class: 'badge warn' }, 'failing')] : null),
        h('td', {}, time(w.created_at))))));
  })();
}
