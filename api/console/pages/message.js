// Message: recipients with status, attempts, last SMTP reply, MX and TLS;
// the event timeline; Retry (failed, bounced or deferred recipients) and
// Cancel (recipients not yet delivered) where the state and the key's
// scopes allow.  Refreshes every 5 s while a recipient is still moving.
import { api, can, describe } from '../api.js';
import { announce, badge, clear, h, state, table, time } from '../ui.js';

const RETRYABLE = new Set(['failed', 'bounced', 'deferred']);
const CANCELABLE = new Set(['queued', 'scheduled', 'deferred']);
const MOVING = new Set(['queued', 'scheduled', 'sending', 'deferred']);

function reply(lr) {
  if (!lr || (lr.code == null && !lr.text)) return h('span', { class: 'muted' }, '—');
  return h('span', { class: 'reply' }, [lr.code, lr.enhanced_code].filter((x) => x != null && x !== '').join(' ') +
    (lr.text ? ' ' + lr.text : ''));
}

function tls(t) {
  if (!t || !t.version) return h('span', { class: 'muted' }, 'none');
  return h('span', {}, t.version + ' ' + (t.cipher || ''), ' ',
    h('span', { class: 'badge ' + (t.verified ? 'ok' : 'muted') }, t.verified ? 'verified' : 'unverified'));
}

function dl(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function render(main, ctx, id) {
  const body = h('div', { id: 'message' });
  const note = h('p', { class: 'state', role: 'status', id: 'action-note', hidden: true });
  main.append(h('p', {}, h('a', { href: '#/messages' }, '← Messages')), body);

  const act = async (btn, what, path, done) => {
    btn.disabled = true;
    note.hidden = true;
    try {
      await api('POST', path, {});
      note.className = 'state ok';
      note.textContent = done;
      announce(done);
      await draw();
    } catch (e) {
      note.className = 'state error';
      note.textContent = what + ' did not work. ' + describe(e).text;
      btn.disabled = false;
    }
    note.hidden = false;
  };

  const draw = async () => {
    const m = await ctx.load(body, () => api('GET', '/v1/messages/' + encodeURIComponent(id)), 'the message');
    if (!m || !ctx.alive) return;
    clear(body);
    const rc = m.recipients || [];
    const actions = h('div', { class: 'actions' });
    if (can('send')) {
      const retry = h('button', { type: 'button', id: 'retry', disabled: !rc.some((r) => RETRYABLE.has(r.status)) }, 'Retry now');
      retry.addEventListener('click', () => act(retry, 'Retry', '/v1/messages/' + encodeURIComponent(m.id) + '/retry',
        'Requeued the failed, bounced and deferred recipients.'));
      const cancel = h('button', { type: 'button', id: 'cancel', class: 'danger', disabled: !rc.some((r) => CANCELABLE.has(r.status)) }, 'Cancel');
      cancel.addEventListener('click', () => {
        if (!window.confirm('Cancel every recipient of this message that is not delivered yet?')) return;
        act(cancel, 'Cancel', '/v1/messages/' + encodeURIComponent(m.id) + '/cancel', 'Canceled the recipients not yet delivered.');
      });
      actions.append(retry, cancel);
    }
    const meta = Object.entries(m.metadata || {});
    body.append(
      h('div', { class: 'page-head' }, h('h1', { id: 'subject' }, m.subject || '(no subject)'), badge(m.status)),
      h('section', { class: 'card' }, dl([
        ['From', m.from],
        ['Message id', h('code', {}, m.id)],
        ['Message-ID header', m.message_id ? h('code', {}, m.message_id) : '—'],
        ['Created', time(m.created_at)],
        m.send_at ? ['Send at', time(m.send_at)] : null,
        ['Size', (m.size || 0).toLocaleString() + ' bytes'],
        ['Tags', (m.tags || []).length ? h('span', { id: 'tags' }, m.tags.map((t) => h('span', { class: 'tag' }, t))) : '—'],
        meta.length ? ['Metadata', h('span', {}, meta.map(([k, v]) => h('span', { class: 'tag' }, k + '=' + v)))] : null,
      ]), actions, note),
      h('section', { class: 'card' }, h('h2', {}, 'Recipients'),
        table('Recipients', ['Recipient', 'Status', 'Attempts', 'Last reply', 'MX', 'TLS', 'Next attempt', 'Updated'],
          rc.map((r) => h('tr', { 'data-email': r.email },
            h('td', { class: 'addr' }, r.email, r.kind !== 'to' ? h('span', { class: 'muted' }, ' (' + r.kind + ')') : null),
            h('td', {}, badge(r.status)),
            h('td', { class: 'num' }, String(r.attempts || 0)),
            h('td', { class: 'last-reply' }, reply(r.last_response)),
            h('td', {}, (r.last_response && r.last_response.mx) || h('span', { class: 'muted' }, '—')),
            h('td', {}, tls(r.tls)),
            h('td', {}, r.next_attempt_at && MOVING.has(r.status) ? time(r.next_attempt_at) : h('span', { class: 'muted' }, '—')),
            h('td', {}, time(r.updated_at)))))),
      h('section', { class: 'card' }, h('h2', {}, 'Timeline'), (m.events || []).length
        ? h('ol', { class: 'timeline', id: 'timeline' }, m.events.map((e) => {
          const smtp = e.data && e.data.smtp;
          return h('li', {}, time(e.created_at), ' ', h('strong', {}, (e.type || '').replace(/^message\./, '')),
            e.recipient ? [' ', h('span', { class: 'addr' }, e.recipient)] : null,
            smtp && (smtp.code || smtp.text) ? h('div', { class: 'reply' },
              [smtp.code, smtp.enhanced_code].filter(Boolean).join(' ') + (smtp.text ? ' ' + smtp.text : '') +
              (smtp.mx ? ' (' + smtp.mx + ')' : '')) : null);
        }))
        : state('No events yet.')));
    if (rc.some((r) => MOVING.has(r.status))) ctx.later(5000, draw);
  };
  draw();
}
