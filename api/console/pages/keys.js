// API keys: list, create (the secret is shown once), revoke.  Admin keys
// only; the key signed in cannot revoke itself.
import { api, describe, session } from '../api.js';
import { announce, clear, field, h, state, table, time } from '../ui.js';

export function render(main, ctx) {
  const name = h('input', { type: 'text', id: 'k-name', required: true, maxlength: '100', autocomplete: 'off' });
  const boxes = ['send', 'read', 'admin'].map((s) =>
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'scope', value: s, checked: s !== 'admin' }), ' ' + s));
  const created = h('div', { id: 'key-created' });
  const form = h('form', { class: 'card filters', id: 'key-form' }, field('Name', name),
    h('fieldset', { class: 'field' }, h('legend', {}, 'Scopes'), h('div', { class: 'inline' }, boxes)),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', id: 'key-create' }, 'Create key')));
  const list = h('div', { id: 'key-list' });
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'API keys'),
    h('p', { class: 'muted' }, 'Keys for applications and people. A new key’s secret is shown once.')), form, created, list);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const scopes = boxes.map((b) => b.firstChild).filter((i) => i.checked).map((i) => i.value);
    if (!scopes.length) { clear(created).append(state('Choose at least one scope.', 'error')); return; }
    try {
      const k = await api('POST', '/v1/keys', { name: name.value.trim(), scopes });
      clear(created).append(h('section', { class: 'card secret', 'aria-labelledby': 'kc-h' },
        h('h2', { id: 'kc-h' }, 'Key “' + k.name + '” created (shown once)'),
        h('p', {}, 'Copy it now: the relay keeps only a hash and will not show it again.'),
        h('code', { class: 'once', id: 'new-key' }, k.key)));
      announce('Key created; its secret is shown once');
      name.value = '';
      load();
    } catch (e) {
      clear(created).append(state(describe(e).text, 'error'));
    }
  });

  const load = async () => {
    const page = await ctx.load(list, () => api('GET', '/v1/keys'), 'the keys');
    if (!page || !ctx.alive) return;
    clear(list);
    const rows = page.data || [];
    list.append(table('API keys', ['Id', 'Name', 'Public id', 'Scopes', 'Created', 'Last used', 'State'], rows.map((k) => {
      let st;
      if (k.revoked_at) st = h('span', {}, h('span', { class: 'badge muted' }, 'revoked'), ' ', time(k.revoked_at));
      else if (k.id === session.id) st = h('span', { class: 'muted' }, 'this key');
      else {
        st = h('button', { type: 'button', class: 'secondary small', 'data-revoke': String(k.id), 'aria-label': 'Revoke key ' + k.name }, 'Revoke');
        st.addEventListener('click', async () => {
          if (!window.confirm('Revoke the key “' + k.name + '”? Applications using it stop working.')) return;
          st.disabled = true;
          try { await api('DELETE', '/v1/keys/' + k.id); announce('Key revoked'); load(); } catch (e) {
            st.disabled = false; list.prepend(state(describe(e).text, 'error'));
          }
        });
      }
      return h('tr', { 'data-key': String(k.id) }, h('td', { class: 'num' }, String(k.id)), h('td', {}, k.name),
        h('td', {}, h('code', {}, k.public_id)), h('td', {}, (k.scopes || []).join(', ')),
        h('td', {}, time(k.created_at)), h('td', {}, time(k.last_used_at)), h('td', {}, st));
    })));
  };
  load();
}
