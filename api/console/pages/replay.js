// Replay: choose a filter (status, time range, recipient domain, tag), see
// the dry-run count and a sample (POST /v1/replays with dry_run), confirm,
// then watch the requeued recipients move (the sample's messages are read
// again every 2 s).  Needs an admin key: the page is not offered otherwise.
import { api, describe } from '../api.js';
import { announce, badge, clear, field, h, localToIso, state, table, time } from '../ui.js';

export function render(main, ctx) {
  const boxes = ['failed', 'bounced', 'deferred'].map((s) =>
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'status', value: s, checked: s !== 'deferred' }), ' ' + s));
  const after = h('input', { type: 'datetime-local', id: 'r-after' });
  const before = h('input', { type: 'datetime-local', id: 'r-before' });
  const domain = h('input', { type: 'text', id: 'r-domain', placeholder: 'example.com', autocomplete: 'off' });
  const tag = h('input', { type: 'text', id: 'r-tag', autocomplete: 'off' });
  const form = h('form', { class: 'card filters', id: 'replay-form' },
    h('fieldset', { class: 'field' }, h('legend', {}, 'Recipient status'), h('div', { class: 'inline' }, boxes)),
    field('Created after', after), field('Created before', before),
    field('Recipient domain', domain), field('Tag', tag),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', id: 'dry-run' }, 'Preview (dry run)')));
  const out = h('div', { id: 'replay-result' });
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Replay'),
    h('p', { class: 'muted' }, 'Send failed, bounced or deferred recipients again. Nothing changes until you confirm.')),
  form, out);

  const filter = () => {
    const f = { status: boxes.map((b) => b.firstChild).filter((i) => i.checked).map((i) => i.value) };
    const a = localToIso(after.value), b = localToIso(before.value);
    if (a) f.created_after = a;
    if (b) f.created_before = b;
    if (domain.value.trim()) f.recipient_domain = domain.value.trim();
    if (tag.value.trim()) f.tag = tag.value.trim();
    return f;
  };

  const watch = (sample, box) => {
    const ids = [...new Set(sample.map((s) => s.message_id))].slice(0, 20);
    const tick = async () => {
      const rows = [];
      for (const id of ids) {
        try {
          const m = await api('GET', '/v1/messages/' + encodeURIComponent(id));
          for (const r of m.recipients || []) {
            rows.push(h('tr', {}, h('td', {}, h('a', { href: '#/message/' + encodeURIComponent(id) }, m.subject || id)),
              h('td', { class: 'addr' }, r.email), h('td', {}, badge(r.status)),
              h('td', { class: 'num' }, String(r.attempts || 0)), h('td', {}, time(r.updated_at))));
          }
        } catch (e) { /* gone meanwhile: leave it out */ }
      }
      if (!ctx.alive) return;
      clear(box).append(table('Requeued recipients, as they move', ['Message', 'Recipient', 'Status', 'Attempts', 'Updated'], rows));
    };
    tick();
    ctx.every(2000, tick);
  };

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = filter();
    if (!f.status.length) { clear(out).append(state('Choose at least one status.', 'error')); return; }
    clear(out).append(state('Counting…', 'loading'));
    let dry;
    try {
      dry = await api('POST', '/v1/replays', { ...f, dry_run: true, sample: 20 });
    } catch (e) {
      clear(out).append(state(describe(e).text, 'error'));
      return;
    }
    const n = dry.would_requeue ?? dry.matched;
    const confirm = h('button', { type: 'button', id: 'confirm', class: 'danger', disabled: !n },
      'Requeue ' + n.toLocaleString() + (n === 1 ? ' recipient' : ' recipients'));
    const skipped = (dry.skipped_suppressed || 0) + (dry.skipped_expired || 0);
    clear(out).append(h('section', { class: 'card', 'aria-labelledby': 'dry-h' },
      h('h2', { id: 'dry-h' }, 'Dry run'),
      h('p', { class: 'big' }, h('span', { id: 'dry-count' }, String(n)), n === 1 ? ' recipient would be requeued' : ' recipients would be requeued',
        skipped ? ' (' + skipped + ' skipped: suppressed or past retention)' : ''),
      (dry.sample || []).length
        ? table('Sample of the recipients', ['Recipient', 'Status', 'Created'], dry.sample.map((s) =>
          h('tr', {}, h('td', { class: 'addr' }, h('a', { href: '#/message/' + encodeURIComponent(s.message_id) }, s.recipient)),
            h('td', {}, badge(s.status)), h('td', {}, time(s.created_at)))))
        : state('Nothing matches this filter.'),
      h('div', { class: 'actions' }, confirm)));
    announce(n + ' recipients would be requeued');
    confirm.focus();
    confirm.addEventListener('click', async () => {
      confirm.disabled = true;
      let res;
      try {
        res = await api('POST', '/v1/replays', { ...f, dry_run: false });
      } catch (e) {
        out.append(state('The replay did not run. ' + describe(e).text, 'error'));
        confirm.disabled = false;
        return;
      }
      const box = h('div', { id: 'watch' });
      out.append(h('section', { class: 'card', 'aria-labelledby': 'done-h' },
        h('h2', { id: 'done-h' }, 'Requeued'),
        h('p', { class: 'big' }, h('span', { id: 'requeued-count' }, String(res.requeued)), ' recipients requeued.'),
        box));
      announce(res.requeued + ' recipients requeued');
      watch(dry.sample || [], box);
    });
  });
}
