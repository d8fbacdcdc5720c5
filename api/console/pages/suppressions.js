// Suppressions: the addresses mail is not sent to, why, and since when;
// add (send scope) and remove (admin scope).
import { api, can, describe, qs } from '../api.js';
import { clear, field, h, state, table, time } from '../ui.js';

export function render(main, ctx) {
  const list = h('div', { id: 'suppression-list' });
  const note = h('p', { class: 'state', role: 'status', hidden: true });
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Suppressions'),
    h('p', { class: 'muted' }, 'Addresses that hard-bounced, complained or were added by hand get no mail.')));
  if (can('send')) {
    const email = h('input', { type: 'email', id: 's-email', required: true, autocomplete: 'off' });
    const add = h('form', { class: 'card filters', id: 'suppress-form' }, field('Address to suppress', email),
      h('div', { class: 'field actions' }, h('button', { type: 'submit' }, 'Suppress')), note);
    add.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        await api('POST', '/v1/suppressions', { email: email.value.trim(), reason: 'manual' });
        note.className = 'state ok';
        note.textContent = 'Suppressed.';
        email.value = '';
        load();
      } catch (e) {
        note.className = 'state error';
        note.textContent = describe(e).text;
      }
      note.hidden = false;
    });
    main.append(add);
  }
  main.append(list);
  const load = async () => {
    const page = await ctx.load(list, () => api('GET', '/v1/suppressions' + qs({ limit: 100 })), 'the suppression list');
    if (!page || !ctx.alive) return;
    clear(list);
    const rows = page.data || [];
    if (!rows.length) { list.append(state('No address is suppressed.')); return; }
    list.append(table('Suppressed addresses', ['Address', 'Reason', 'Since', ''], rows.map((s) => {
      let btn = null;
      if (can('admin')) {
        btn = h('button', { type: 'button', class: 'secondary small', 'aria-label': 'Remove ' + s.email }, 'Remove');
        btn.addEventListener('click', async () => {
          btn.disabled = true;
          try { await api('DELETE', '/v1/suppressions/' + encodeURIComponent(s.email)); load(); } catch (e) {
            btn.disabled = false; list.prepend(state(describe(e).text, 'error'));
          }
        });
      }
      return h('tr', {}, h('td', { class: 'addr' }, s.email), h('td', {}, s.reason || ''), h('td', {}, time(s.created_at)), h('td', {}, btn));
    })));
  };
  load();
}
