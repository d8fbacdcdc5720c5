// Messages: the list with every filter GET /v1/messages has (status,
// recipient, tag, created_after, created_before), cursor paging ("Show
// more"), a search box that takes a recipient or a message id, and new
// messages appearing by polling the event feed (GET /v1/events).
import { api, describe, qs } from '../api.js';
import { announce, badge, clear, field, h, localToIso, state, table, time } from '../ui.js';

const STATUSES = ['queued', 'scheduled', 'sending', 'deferred', 'delivered', 'bounced', 'failed', 'suppressed', 'canceled', 'partial'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PAGE = 25;

function row(m, isNew) {
  const rc = m.recipients || [];
  const first = rc.length ? rc[0].email : '';
  return h('tr', { 'data-id': m.id, class: isNew ? 'new' : '' },
    h('td', {}, time(m.created_at)),
    h('td', {}, h('a', { href: '#/message/' + encodeURIComponent(m.id), class: 'subject' }, m.subject || '(no subject)')),
    h('td', { class: 'addr' }, first, rc.length > 1 ? h('span', { class: 'muted' }, ' +' + (rc.length - 1)) : null),
    h('td', {}, badge(m.status)),
    h('td', {}, (m.tags || []).map((t) => h('span', { class: 'tag' }, t))));
}

// The cursor at the end of the event feed now (bounded walk).
async function feedEnd() {
  let cursor = '';
  for (let i = 0; i < 100; i++) {
    const r = await api('GET', '/v1/events' + qs({ after: cursor, limit: 1000 }));
    cursor = r.next_cursor || cursor;
    if (!r.has_more) break;
  }
  return cursor;
}

export function render(main, ctx) {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const search = h('input', { type: 'search', id: 'search', name: 'q', placeholder: 'someone@example.com or a message id',
    value: params.get('q') || '' });
  const status = h('select', { id: 'f-status', name: 'status' }, h('option', { value: '' }, 'any'),
    STATUSES.map((s) => h('option', { value: s }, s)));
  const recipient = h('input', { type: 'email', id: 'f-recipient', name: 'recipient', autocomplete: 'off' });
  const tag = h('input', { type: 'text', id: 'f-tag', name: 'tag', autocomplete: 'off' });
  const after = h('input', { type: 'datetime-local', id: 'f-after', name: 'created_after' });
  const before = h('input', { type: 'datetime-local', id: 'f-before', name: 'created_before' });
  const searchForm = h('form', { class: 'searchbar', role: 'search', id: 'search-form' },
    h('label', { for: 'search' }, 'Find a recipient or a message id'), h('div', { class: 'inline' }, search,
      h('button', { type: 'submit' }, 'Find')));
  const filters = h('form', { class: 'filters', id: 'filters' },
    field('Status', status), field('Recipient', recipient), field('Tag', tag),
    field('Created after', after), field('Created before', before),
    h('div', { class: 'field actions' }, h('button', { type: 'submit' }, 'Apply filters'),
      h('button', { type: 'reset', class: 'secondary' }, 'Clear')));
  const live = h('p', { class: 'muted', id: 'live-note' }, 'New messages appear here as they are accepted.');
  const list = h('div', { id: 'message-list' });
  const more = h('button', { type: 'button', id: 'more', class: 'secondary', hidden: true }, 'Show more');
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Messages')),
    h('section', { class: 'card' }, searchForm, h('details', { class: 'filter-box' }, h('summary', {}, 'Filters'), filters)),
    live, list, more);

  let cursor = null;
  let tbody = null;
  const seen = new Set();
  const filter = () => ({
    status: status.value, recipient: recipient.value.trim(), tag: tag.value.trim(),
    created_after: localToIso(after.value), created_before: localToIso(before.value),
  });

  const showPage = (page, append) => {
    if (!append) {
      clear(list);
      seen.clear();
      if (!page.data.length) {
        list.append(state('No messages match these filters.'));
        tbody = null;
      } else {
        const t = table('Messages', ['Created', 'Subject', 'Recipient', 'Status', 'Tags'], [], { class: 'cards' });
        tbody = t.querySelector('tbody');
        list.append(t);
      }
    }
    for (const m of page.data) {
      if (seen.has(m.id) || !tbody) continue;
      seen.add(m.id);
      tbody.append(row(m, false));
    }
    cursor = page.has_more ? page.next_cursor : null;
    more.hidden = !cursor;
  };

  const load = async () => {
    const page = await ctx.load(list, () => api('GET', '/v1/messages' + qs({ ...filter(), limit: PAGE })), 'messages');
    if (page && ctx.alive) showPage(page, false);
  };

  more.addEventListener('click', async () => {
    more.disabled = true;
    try {
      showPage(await api('GET', '/v1/messages' + qs({ ...filter(), limit: PAGE, after: cursor })), true);
    } catch (e) {
      list.append(state(describe(e).text, 'error'));
    }
    more.disabled = false;
  });
  filters.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
  filters.addEventListener('reset', () => setTimeout(load, 0));
  searchForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = search.value.trim();
    if (UUID.test(v)) { location.hash = '#/message/' + encodeURIComponent(v); return; }
    recipient.value = v;
    load();
  });

  // New messages: the event feed says something happened; the first page
  // is fetched again and rows not shown yet go on top.
  const poll = async (feed) => {
    const r = await api('GET', '/v1/events' + qs({ after: feed.cursor, limit: 1000 }));
    feed.cursor = r.next_cursor || feed.cursor;
    if (!r.data.length || !ctx.alive) return;
    const page = await api('GET', '/v1/messages' + qs({ ...filter(), limit: PAGE }));
    if (!ctx.alive) return;
    if (!tbody) { showPage(page, false); return; }
    let added = 0;
    for (const m of page.data.slice().reverse()) {
      const old = tbody.querySelector('tr[data-id="' + CSS.escape(m.id) + '"]');
      if (old) { old.replaceWith(row(m, old.classList.contains('new'))); continue; }
      seen.add(m.id);
      tbody.prepend(row(m, true));
      added++;
    }
    if (added) announce(added + (added === 1 ? ' new message' : ' new messages'));
  };

  (async () => {
    if (params.get('q')) { recipient.value = params.get('q'); }
    await load();
    const feed = { cursor: await ctx.load(h('div'), feedEnd, 'the event feed') };
    if (feed.cursor === undefined) return;
    live.textContent = 'New messages appear here as they are accepted (checked every 2 seconds).';
    ctx.every(2000, () => poll(feed));
  })();
}
