// Domains: the sending domains (docs/domains.md), adding one, and one
// domain's DNS records to publish (a table with a copy button per value,
// and the set as zone-file lines like "mailferry domains show"), the last
// verification's per-record results, Verify, Rotate keys, Remove.  Admin
// keys only.  Every value from the relay or from DNS ("seen") is text.
import { api, describe } from '../api.js';
import { announce, badge, clear, field, h, state, table, time } from '../ui.js';

const path = (d) => '/v1/domains/' + encodeURIComponent(d);

// A TXT value as zone-file character-strings of at most 255 octets, quotes
// and backslashes escaped (RFC 1035 §5.1), as cli/cmd_domains.c prints it.
function txt(v) {
  const parts = [];
  for (let i = 0; i < v.length || i === 0; i += 255) {
    parts.push('"' + v.slice(i, i + 255).replace(/["\\]/g, '\\$&') + '"');
    if (!v.length) break;
  }
  return v.length > 255 ? '( ' + parts.join(' ') + ' )' : parts[0];
}

function zone(d) {
  const lines = ['; ' + d.domain + ': status ' + d.status + ', added ' + d.created_at];
  for (const r of d.records || []) {
    let line = r.name + '.\t3600\tIN\t' + r.type + '\t' + (r.type === 'TXT' ? txt(r.value || '') : (r.value || '')) + '\t; ' + (r.purpose || '');
    if (r.purpose === 'dkim') line += ' (' + (r.key_state || '?') + ' key)';
    if (r.purpose === 'dmarc') line += ' (replace the rua address with a mailbox that takes DMARC reports)';
    lines.push(line);
  }
  return lines.join('\n');
}

// The text of a refused request: the relay's problem detail when it has one.
function problemText(e) {
  const errs = (e.problem && e.problem.errors) || [];
  if (errs.length) return errs.map((x) => x.message).join('; ');
  if (e.problem && e.problem.detail) return e.problem.detail;
  return describe(e).text;
}

const LOOKUP = {
  nxdomain: 'the name does not exist (NXDOMAIN)',
  nodata: 'the name has no record of this type',
  servfail: 'no usable answer (SERVFAIL, or no server answered)',
  timeout: 'no answer in time',
};

async function copy(btn, value) {
  try {
    await navigator.clipboard.writeText(value);
    btn.firstChild.textContent = 'Copied';
    announce('Copied to the clipboard');
  } catch (e) {
    // No clipboard access (permission, insecure origin): select the value
    // so that the operator can copy it with the keyboard.
    const code = btn.closest('tr').querySelector('code.value');
    const range = document.createRange();
    range.selectNodeContents(code);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    btn.firstChild.textContent = 'Selected';
    announce('The clipboard is not available; the value is selected, copy it with Ctrl+C');
  }
  setTimeout(() => { btn.firstChild.textContent = 'Copy'; }, 2000);
}

function recordsTable(d) {
  const rows = (d.records || []).map((r, i) => {
    const b = h('button', { type: 'button', class: 'secondary small copy', 'data-copy': String(i) }, h('span', {}, 'Copy'),
      h('span', { class: 'visually-hidden' }, ' the value of the ' + r.purpose + ' ' + r.type + ' record at ' + r.name));
    b.addEventListener('click', () => copy(b, r.value || ''));
    return h('tr', { 'data-purpose': r.purpose }, h('td', {}, r.type), h('td', { class: 'addr' }, h('code', {}, r.name)),
      h('td', { class: 'record-value' }, h('code', { class: 'value' }, r.value || '')), h('td', {}, r.purpose),
      h('td', {}, r.key_state ? badge(r.key_state) : h('span', { class: 'muted' }, '—')), h('td', {}, b));
  });
  if (!rows.length) return state('This domain has no record to publish.');
  return table('Records, one per row', ['Type', 'Name', 'Value', 'Purpose', 'Key state', 'Copy'], rows, { class: 'records' });
}

function checksTable(d) {
  if (!Array.isArray(d.checks)) return state('The records were not looked up yet: publish them, then press Verify.');
  if (!d.checks.length) return state('The last check looked nothing up.');
  const yes = (v) => (v ? h('span', { class: 'badge ok' }, 'yes') : h('span', { class: 'badge bad' }, 'no'));
  return table('Last check, per record', ['Record', 'Found', 'Matches', 'Seen', 'Lookup failure'], d.checks.map((c) =>
    h('tr', { 'data-purpose': c.purpose || '' },
      h('td', { class: 'addr' }, (c.purpose || '') + ' ' + (c.type || '') + ' ', h('code', {}, c.name || '')),
      h('td', {}, yes(c.found)), h('td', {}, yes(c.matches)),
      h('td', { class: 'seen reply' }, (c.seen && c.seen.length) ? h('ul', { class: 'plain' }, c.seen.map((s) => h('li', {}, s))) : '—'),
      h('td', { class: 'lookup' }, c.lookup ? [h('code', {}, c.lookup), ': ', LOOKUP[c.lookup] || 'the lookup failed'] : '—'))));
}

function domainView(main, ctx, name) {
  const view = h('div', { id: 'domain' });
  const note = h('div', { role: 'status', id: 'domain-note' });
  main.append(h('p', {}, h('a', { href: '#/domains' }, '← Domains')), view);
  const draw = (d) => {
    const verify = h('button', { type: 'button', id: 'verify' }, 'Verify');
    const rotate = h('button', { type: 'button', id: 'rotate-keys', class: 'secondary' }, 'Rotate keys');
    const remove = h('button', { type: 'button', id: 'remove', class: 'danger' }, 'Remove');
    const buttons = [verify, rotate, remove];
    const act = async (btn, busy, fn) => {
      buttons.forEach((b) => { b.disabled = true; });
      clear(note).append(state(busy, 'loading'));
      try {
        await fn();
      } catch (e) {
        if (!ctx.alive) return;
        clear(note).append(state(problemText(e), 'error'));
        buttons.forEach((b) => { b.disabled = false; });
        btn.focus();
      }
    };
    verify.addEventListener('click', () => act(verify, 'Looking the records up (each lookup takes at most 5 seconds)…', async () => {
      const r = await api('POST', path(name) + '/verify', {});
      if (!ctx.alive) return;
      draw(r);
      clear(note).append(state(r.status === 'verified' ? 'Verified: the DKIM records are published.'
        : 'Not verified: see the last check below for the records that are missing or differ.', r.status === 'verified' ? 'ok' : 'error'));
      announce('Verification finished: ' + r.status);
      document.getElementById('verify').focus();
    }));
    rotate.addEventListener('click', () => {
      if (!window.confirm('Make new DKIM keys for ' + name + '? They take over once a verification finds them published; until then the current keys keep signing.')) return;
      act(rotate, 'Making new keys…', async () => {
        const r = await api('POST', path(name) + '/rotate', {});
        if (!ctx.alive) return;
        draw(r);
        clear(note).append(state('New keys made: publish their records, then press Verify.', 'ok'));
        announce('New keys made');
      });
    });
    remove.addEventListener('click', () => {
      if (!window.confirm('Remove ' + name + ' and its DKIM keys? Its mail is then signed as before it was added; new keys mean new records.')) return;
      act(remove, 'Removing…', async () => {
        await api('DELETE', path(name));
        announce(name + ' removed');
        location.hash = '#/domains';
      });
    });
    clear(view).append(
      h('div', { class: 'page-head' }, h('h1', { id: 'domain-name' }, d.domain), badge(d.status)),
      h('section', { class: 'card' }, h('dl', { class: 'facts' },
        h('dt', {}, 'Added'), h('dd', {}, time(d.created_at)),
        h('dt', {}, 'Verified'), h('dd', {}, time(d.verified_at)),
        h('dt', {}, 'Last checked'), h('dd', {}, time(d.checked_at))),
      h('div', { class: 'actions' }, buttons)),
      note,
      h('section', { class: 'card', 'aria-labelledby': 'rec-h', id: 'records' }, h('h2', { id: 'rec-h' }, 'DNS records to publish'),
        h('p', { class: 'muted' }, 'Publish these at your DNS provider. SPF and DMARC are suggestions: merge them with records you already have.'),
        recordsTable(d),
        h('h3', { id: 'zone-h' }, 'As zone-file lines'),
        h('pre', { id: 'zone', class: 'zone', tabindex: '0', 'aria-labelledby': 'zone-h' }, zone(d))),
      h('section', { class: 'card', 'aria-labelledby': 'chk-h', id: 'checks' },
        h('h2', { id: 'chk-h' }, 'Last check', d.checked_at ? [' (', time(d.checked_at), ')'] : ''), checksTable(d)));
  };
  (async () => {
    const d = await ctx.load(view, () => api('GET', path(name)), 'the domain');
    if (!d || !ctx.alive) return;
    draw(d);
  })();
}

export function render(main, ctx, name) {
  if (name) { domainView(main, ctx, name); return; }
  const input = h('input', { type: 'text', id: 'd-name', name: 'domain', required: true, maxlength: '253', autocomplete: 'off',
    spellcheck: 'false', placeholder: 'shop.example.com', 'aria-describedby': 'd-name-error' });
  const err = h('p', { class: 'field-error', id: 'd-name-error', role: 'alert' });
  const form = h('form', { class: 'card filters', id: 'domain-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'd-name' }, 'Domain'), input, err),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', id: 'domain-add' }, 'Add domain')));
  const list = h('div', { id: 'domain-list' });
  main.append(h('div', { class: 'page-head' }, h('h1', {}, 'Domains'),
    h('p', { class: 'muted' }, 'Sending domains: each signs its mail with its own DKIM keys once its records are published.')), form, list);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const domain = input.value.trim();
    err.textContent = '';
    input.removeAttribute('aria-invalid');
    if (!domain) { err.textContent = 'Enter a domain name, e.g. shop.example.com.'; input.setAttribute('aria-invalid', 'true'); input.focus(); return; }
    const button = document.getElementById('domain-add');
    button.disabled = true;
    try {
      const d = await api('POST', '/v1/domains', { domain });
      announce(d.domain + ' added: publish its records');
      location.hash = '#/domains/' + encodeURIComponent(d.domain);
    } catch (e) {
      if (!ctx.alive) return;
      button.disabled = false;
      err.textContent = problemText(e);
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  });

  (async () => {
    const page = await ctx.load(list, () => api('GET', '/v1/domains'), 'the domains');
    if (!page || !ctx.alive) return;
    clear(list);
    const rows = page.data || [];
    if (!rows.length) { list.append(state('No sending domain is registered. Add one above to get its DKIM keys and the DNS records to publish.')); return; }
    list.append(table('Sending domains', ['Domain', 'Status', 'Added', 'Verified', 'Last checked'], rows.map((d) =>
      h('tr', { 'data-domain': d.domain }, h('td', { class: 'addr' }, h('a', { href: '#/domains/' + encodeURIComponent(d.domain) }, d.domain)),
        h('td', {}, badge(d.status)), h('td', {}, time(d.created_at)), h('td', {}, time(d.verified_at)),
        h('td', {}, time(d.checked_at))))));
  })();
}
