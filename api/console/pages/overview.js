// Overview: the queue now, outcomes per minute (last hour) and per hour
// (last week), top deferral and bounce reasons, destinations with
// deferrals, failing webhook endpoints.  Refreshes every 30 s.
import { api, can } from '../api.js';
import { clear, fmtNum, h, state, table, time } from '../ui.js';

const SERIES = [
  { key: 'delivered', label: 'Delivered', stroke: '#1a7f37' },
  { key: 'deferred', label: 'Deferred', stroke: '#9a6700' },
  { key: 'bounced', label: 'Bounced', stroke: '#cf222e' },
  { key: 'failed', label: 'Failed', stroke: '#6e40c9' },
];

function stat(label, value, cls) {
  return h('div', { class: 'stat ' + (cls || '') }, h('span', { class: 'stat-value' }, fmtNum(value)),
    h('span', { class: 'stat-label' }, label));
}

function reasons(label, rows) {
  if (!rows.length) return h('section', { class: 'card' }, h('h2', {}, label), state('None in the last 24 hours.'));
  return h('section', { class: 'card' }, h('h2', {}, label), table(label, ['Count', 'Reply'], rows.map((r) =>
    h('tr', {}, h('td', { class: 'num' }, fmtNum(r.count)),
      h('td', { class: 'reply' }, [r.code, r.enhanced_code].filter(Boolean).join(' ') + (r.text ? ' ' + r.text : ''))))));
}

function chart(box, title, data, unit, ctx) {
  const U = window.uPlot;
  const label = title + ': ' + SERIES.map((s) => s.label.toLowerCase() + ' ' +
    fmtNum(data.buckets.reduce((a, b) => a + b[s.key], 0))).join(', ');
  const holder = h('div', { class: 'chart', role: 'img', 'aria-label': label });
  box.append(h('h2', {}, title), holder);
  if (!U) { holder.append(state('The chart library did not load.', 'error')); return; }
  const xs = data.buckets.map((b) => Date.parse(b.t) / 1000);
  const cols = [xs, ...SERIES.map((s) => data.buckets.map((b) => b[s.key]))];
  const width = () => Math.max(280, holder.clientWidth || box.clientWidth - 32);
  const plot = new U({
    width: width(), height: 200,
    series: [{}, ...SERIES.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, points: { show: false } }))],
    axes: [{ stroke: '#444' }, { stroke: '#444', size: 50 }],
    scales: { x: { time: true } },
    legend: { show: true, live: false },
    cursor: { show: false },
  }, cols, holder);
  const ro = new ResizeObserver(() => { if (ctx.alive) plot.setSize({ width: width(), height: 200 }); });
  ro.observe(holder);
  const stop = ctx.stop.bind(ctx);
  ctx.stop = () => { ro.disconnect(); plot.destroy(); stop(); };
  void unit;
}

export function render(main, ctx) {
  const head = h('div', { class: 'page-head' }, h('h1', {}, 'Overview'),
    h('p', { class: 'muted' }, 'The queue now, and what happened to mail in the last hour, day and week.'));
  const body = h('div', { id: 'overview' });
  main.append(head, body);
  const draw = async (first) => {
    const all = await ctx.load(first ? body : h('div'), () => Promise.all([
      api('GET', '/v1/stats/overview'),
      api('GET', '/v1/stats/timeseries?interval=minute'),
      api('GET', '/v1/stats/timeseries?interval=hour'),
    ]), 'the overview');
    if (!all || !ctx.alive) return;
    const [ov, minute, hour] = all;
    const q = ov.queue, t = ov.totals;
    clear(body);
    body.append(
      h('section', { class: 'card', 'aria-labelledby': 'q-h' }, h('h2', { id: 'q-h' }, 'Queue now'),
        h('div', { class: 'stats' }, stat('queued', q.queued), stat('scheduled', q.scheduled),
          stat('sending', q.sending), stat('deferred', q.deferred, q.deferred ? 'warn' : '')),
        h('p', { class: 'muted' }, q.oldest_due_seconds > 0
          ? 'The oldest recipient due has waited ' + Math.round(q.oldest_due_seconds) + ' s.'
          : 'Nothing is waiting past its time.')),
      h('section', { class: 'card', 'aria-labelledby': 't-h' }, h('h2', { id: 't-h' }, 'Last ' + ov.window_hours + ' hours'),
        h('div', { class: 'stats' }, stat('delivered', t.delivered, 'ok'), stat('deferred', t.deferred, t.deferred ? 'warn' : ''),
          stat('bounced', t.bounced, t.bounced ? 'bad' : ''), stat('failed', t.failed, t.failed ? 'bad' : ''))));
    const c1 = h('section', { class: 'card chart-card' });
    const c2 = h('section', { class: 'card chart-card' });
    body.append(h('div', { class: 'grid2' }, c1, c2));
    chart(c1, 'Per minute, last hour', minute, 'minute', ctx);
    chart(c2, 'Per hour, last 7 days', hour, 'hour', ctx);
    const doms = ov.top_deferred_destinations;
    body.append(h('div', { class: 'grid2' },
      reasons('Top deferral reasons', ov.top_deferral_reasons),
      reasons('Top bounce reasons', ov.top_bounce_reasons)));
    const lower = h('div', { class: 'grid2' },
      h('section', { class: 'card' }, h('h2', {}, 'Destinations with deferrals'), doms.length
        ? table('Destinations with deferrals', ['Domain', 'Deferrals'], doms.map((d) =>
          h('tr', {}, h('td', {}, d.domain), h('td', { class: 'num' }, fmtNum(d.deferrals)))))
        : state('No destination deferred mail in the last 24 hours.')));
    if (can('admin') && ov.failing_webhooks) {
      const wh = ov.failing_webhooks;
      lower.append(h('section', { class: 'card' }, h('h2', {}, 'Failing webhook endpoints'), wh.length
        ? table('Failing webhook endpoints', ['Endpoint', 'Since', 'Pending'], wh.map((w) =>
          h('tr', {}, h('td', {}, h('a', { href: '#/webhooks/' + encodeURIComponent(w.id) }, w.url),
            w.enabled ? null : h('span', { class: 'badge bad' }, 'disabled')),
          h('td', {}, time(w.failing_since)), h('td', { class: 'num' }, fmtNum(w.pending_deliveries)))))
        : state('Every webhook endpoint is answering.')));
    }
    body.append(lower);
  };
  draw(true);
  ctx.every(30000, () => draw(false));
}
