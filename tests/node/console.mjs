// console.mjs - the operations console in a real headless Chromium
// (Debian's /usr/bin/chromium driven by puppeteer-core), run by
// tests/integration/test_console.c, which starts "mailferry serve" with its
// own database and makes the mail this script looks at.
//
// Environment: BASE (http://127.0.0.1:PORT), ADMIN_KEY, READ_KEY, SEND_KEY
// (send only: the sign-in for a key without read), BOUNCED_ID (a message
// whose recipient was refused "550 5.7.1 ..."), XSS_ID (subject, tags,
// metadata and bounce text carry markup), SHOTS (screenshot folder),
// CHROMIUM (default /usr/bin/chromium).
//
// One browser for everything.  Every page is checked for console errors,
// page errors, failed requests and CSP violations, and with axe-core for
// serious or critical accessibility violations; every page is
// photographed at 1280 and at 390 px.  Prints one JSON line
// {"ok":bool,"failures":[...],"checks":N,...} and exits 0 only when ok.
// Waits are on conditions in the page, each bounded.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import puppeteer from 'puppeteer-core';

const require = createRequire(import.meta.url);
const env = (k, d) => process.env[k] ?? d;
const BASE = env('BASE');
const ADMIN_KEY = env('ADMIN_KEY');
const READ_KEY = env('READ_KEY');
const BOUNCED_ID = env('BOUNCED_ID');
const XSS_ID = env('XSS_ID');
const SHOTS = env('SHOTS', 'build/console-screens');
const WAIT = Number(env('WAIT_MS', '30000'));
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const failures = [];
const notes = [];
let checks = 0;
const T0 = Date.now();
const timing = [];
let lastMark = T0;
const mark = (what) => { const now = Date.now(); timing.push(what + ' ' + (now - lastMark)); lastMark = now; };
const check = (cond, what) => { checks++; if (!cond) failures.push(what); return cond; };

fs.mkdirSync(SHOTS, { recursive: true });

const browser = await puppeteer.launch({
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run', '--lang=en-US'],
});

// Watches one page: console errors, page errors, failed requests, CSP
// violations (a securitypolicyviolation listener installed before any of
// the page's own scripts run).
function watch(page, label) {
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(label + ' console error: ' + m.text()); });
  page.on('pageerror', (e) => problems.push(label + ' page error: ' + e.message));
  // Chromium reports a 204 No Content answer to fetch() as net::ERR_ABORTED
  // although it succeeded (puppeteer issue 9458): those are not failures.
  const noContent = new WeakSet();
  page.on('requestfailed', (r) => {
    if (noContent.has(r) && (r.failure() || {}).errorText === 'net::ERR_ABORTED') return;
    problems.push(label + ' request failed: ' + r.method() + ' ' + r.url() + ' ' + (r.failure() || {}).errorText);
  });
  page.on('response', (r) => {
    if (r.status() === 204) noContent.add(r.request());
    if (r.status() >= 400) problems.push(label + ' HTTP ' + r.status() + ' for ' + r.url());
  });
  page.on('dialog', (d) => d.accept());
  page.evaluateOnNewDocument(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || ''));
    });
  });
  return problems;
}

async function cspViolations(page) {
  return page.evaluate(() => window.__csp || []);
}

async function axe(page, name) {
  await page.evaluate(AXE);
  const r = await page.evaluate(async () => {
    const res = await window.axe.run(document, { resultTypes: ['violations'] });
    return res.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  const bad = r.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(bad.length === 0, 'axe ' + name + ': ' + JSON.stringify(bad));
  const minor = r.filter((v) => !bad.includes(v));
  if (minor.length) notes.push('axe ' + name + ' (minor): ' + minor.map((v) => v.id).join(','));
}

const shots = [];
async function shot(page, name, width) {
  const file = path.join(SHOTS, name + '-' + width + '.png');
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
}

async function text(page, sel) {
  return page.$eval(sel, (e) => e.textContent);
}

async function go(page, hash, ready) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForSelector(ready, { timeout: WAIT });
}

// Resolves when fn (run in the page) returns truthy; bounded.
async function until(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, { timeout: WAIT, polling: 100 }, arg);
    return true;
  } catch (e) {
    failures.push('timed out waiting: ' + what);
    return false;
  }
}

async function apiSend(body) {
  const r = await fetch(BASE + '/v1/messages', {
    method: 'POST', headers: { Authorization: 'Bearer ' + ADMIN_KEY, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const j = await r.json();
  check(r.status === 202, 'POST /v1/messages answered ' + r.status);
  return j.id;
}

const PAGES = [
  { name: 'overview', hash: '#/overview', ready: '#overview .stats', axe390: true },
  { name: 'messages', hash: '#/messages', ready: '#message-list table', axe390: true },
  { name: 'message', hash: '#/message/' + BOUNCED_ID, ready: '#message .last-reply', axe390: true },
  { name: 'message-xss', hash: '#/message/' + XSS_ID, ready: '#message .last-reply' },
  { name: 'replay', hash: '#/replay', ready: '#replay-form' },
  { name: 'suppressions', hash: '#/suppressions', ready: '#suppression-list > *:not(.loading)' },
  { name: 'webhooks', hash: '#/webhooks', ready: '#webhook-list > *:not(.loading)' },
  { name: 'keys', hash: '#/keys', ready: '#key-list table' },
  { name: 'domains', hash: '#/domains', ready: '#domain-list > *:not(.loading)' },
];

// Drops an expected refusal (status on a URL containing part) from the
// problems a page collected; says whether there was one.
function expected(problems, status, part) {
  const i = problems.findIndex((p) => p.includes('HTTP ' + status + ' for ') && p.includes(part));
  if (i >= 0) problems.splice(i, 1);
  // Chromium also logs the refused fetch as a console error.
  const j = problems.findIndex((p) => p.includes('console error: Failed to load resource') && p.includes('status of ' + status));
  if (j >= 0) problems.splice(j, 1);
  return i >= 0;
}

try {
  // --- an admin signs in ---------------------------------------------------
    mark('const ctxA = await browser.cre');
const ctxA = await browser.createBrowserContext();
  const page = await ctxA.newPage();
  const problems = watch(page, 'admin');
  await page.setViewport({ width: 1280, height: 900 });
  const resp = await page.goto(BASE + '/console/', { waitUntil: 'load' });
  check(resp.status() === 200, 'GET /console/ answered ' + resp.status());
  check((resp.headers()['content-security-policy'] || '').includes("frame-ancestors 'none'"), 'the page has no strict CSP');
  await page.waitForSelector('#key', { timeout: WAIT });
  await axe(page, 'sign-in');
  await shot(page, 'signin', 1280);
  mark("await page.type('#key', ADMIN_");
  await page.type('#key', ADMIN_KEY);
  await page.keyboard.press('Enter'); // keyboard: the form submits with Enter
  await page.waitForSelector('#overview .stats', { timeout: WAIT });
  check(await page.evaluate(() => !!sessionStorage.getItem('mailferry.console.key')), 'the key is not in sessionStorage');
  check(await page.evaluate(() => document.cookie === ''), 'the console set a cookie');
  await until(page, () => document.querySelectorAll('#overview .uplot').length === 2, null, 'two charts on the overview');
  check(await page.$eval('a[data-page="replay"]', (a) => !a.parentElement.hidden), 'admin does not see Replay in the menu');

  mark('// --- a message sent through ');
  // --- a message sent through the API appears in the list ----------------
  await go(page, '#/messages', '#message-list table');
  check(await page.$(`tr[data-id="${BOUNCED_ID}"]`) !== null, 'the bounced message is not in the list');
  await until(page, () => document.getElementById('live-note').textContent.includes('every 2 seconds'), null, 'the list polls the event feed');
  const newId = await apiSend({ from: 'shop@example.com', to: 'fresh@ok.test', subject: 'Arrives while you watch', text: 'hi', tags: ['live'] });
  if (await until(page, (id) => document.querySelector(`tr[data-id="${id}"]`), newId, 'a message sent through the API appears in the list without reloading')) {
    check((await text(page, `tr[data-id="${newId}"] .subject`)) === 'Arrives while you watch', 'the new row shows its subject');
  }
  mark('// the search box takes a mess');
  // the search box takes a message id
  await page.$eval('#search', (e) => { e.value = ''; });
  await page.type('#search', BOUNCED_ID);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#message .last-reply', { timeout: WAIT });
  check((await page.evaluate(() => location.hash)).includes(BOUNCED_ID), 'search by id opens the message');

  mark("// --- the bounced recipient's");
  // --- the bounced recipient's SMTP reply --------------------------------
  await until(page, () => [...document.querySelectorAll('.last-reply')].some((e) => e.textContent.includes('550 5.7.1 Mailbox refused by policy')),
    null, 'the message page shows the bounced recipient\'s SMTP reply');
  check((await page.$('#retry')) !== null, 'admin sees the Retry button');

  mark('// --- markup from senders');
  // --- markup from senders and receivers stays text ----------------------
  await go(page, '#/message/' + XSS_ID, '#message .last-reply');
  await until(page, () => [...document.querySelectorAll('.last-reply')].some((e) => e.textContent.includes('<img src=x onerror=')),
    null, 'the XSS bounce text is shown as text');
  const xss = await page.evaluate(() => ({
    subject: document.getElementById('subject').textContent,
    tags: document.getElementById('tags').textContent,
    imgs: document.querySelectorAll('main img, main script, main svg').length,
    ran: window.__xss,
  }));
  check(xss.subject.includes('<img src=x onerror=window.__xss=1>') && xss.subject.includes('</script>'), 'the subject is not shown as text: ' + xss.subject);
  check(xss.tags.includes('<img src=x onerror=window.__xss=3>') && xss.tags.includes('</script>'), 'the tags are not shown as text: ' + xss.tags);
  check(xss.imgs === 0, 'markup from the message became elements: ' + xss.imgs);
  check(xss.ran === undefined, 'a payload ran: window.__xss = ' + xss.ran);
  await go(page, '#/messages', `#message-list tr[data-id="${XSS_ID}"]`);
  check((await text(page, `tr[data-id="${XSS_ID}"] .subject`)).includes('<img src=x'), 'the list shows the XSS subject as text');
  check(await page.evaluate(() => window.__xss === undefined && document.querySelectorAll('main img').length === 0), 'a payload ran in the list');

  mark('// --- replay: dry-run');
  // --- replay: dry-run count, confirm, watch -----------------------------
  await go(page, '#/replay', '#replay-form');
  await page.type('#r-domain', 'bad.test');
  await page.click('#dry-run');
  await page.waitForSelector('#dry-count', { timeout: WAIT });
  check((await text(page, '#dry-count')) === '20', 'the dry run counts ' + (await text(page, '#dry-count')) + ', not 20');
  await shot(page, 'replay-dry-run', 1280);
  await axe(page, 'replay dry run');
  mark("await page.click('#confirm');");
  await page.click('#confirm');
  await page.waitForSelector('#requeued-count', { timeout: WAIT });
  check((await text(page, '#requeued-count')) === '20', 'the replay requeued ' + (await text(page, '#requeued-count')) + ', not 20');
  await until(page, () => document.querySelectorAll('#watch tbody tr').length >= 1, null, 'the requeued recipients are watched');
  // They go out again and the sink refuses them again: attempts reach 2.
  await until(page, () => [...document.querySelectorAll('#watch tbody tr')].some((tr) => tr.cells[3].textContent === '2'),
    null, 'a requeued recipient is attempted again');
  mark("await shot(page, 'replay-reque");
  await shot(page, 'replay-requeued', 1280);

  // --- API keys: create (shown once), revoke ------------------------------
  await go(page, '#/keys', '#key-list table');
  await page.type('#k-name', 'ci deploys');
  await page.click('#key-create');
  await page.waitForSelector('#new-key', { timeout: WAIT });
  const newKey = await text(page, '#new-key');
  check(/^mf_[A-Za-z0-9]+_[A-Za-z0-9_-]+$/.test(newKey), 'the new key is shown: ' + newKey);
  const who = await fetch(BASE + '/v1/keys/self', { headers: { Authorization: 'Bearer ' + newKey } });
  check(who.status === 200, 'the key the console created does not work: ' + who.status);
  const made = await until(page, () => [...document.querySelectorAll('#key-list tr')].some((tr) => tr.textContent.includes('ci deploys') && tr.querySelector('[data-revoke]')), null, 'the new key is listed');
  if (made) {
    await page.$$eval('#key-list tr', (trs) => trs.find((tr) => tr.textContent.includes('ci deploys')).querySelector('[data-revoke]').click());
    await until(page, () => [...document.querySelectorAll('#key-list tr')].some((tr) => tr.textContent.includes('ci deploys') && tr.textContent.includes('revoked')), null, 'the key is revoked');
  }
  mark('// --- domains');
  // --- domains: add, records, verify (fails: no DNS answers), remove ------
  await go(page, '#/domains', '#domain-list > *:not(.loading)');
  check((await text(page, '#domain-list')).includes('No sending domain is registered'), 'the empty domain list says so');
  // A bad name: the relay's 422 is shown next to the field, as text.
  await page.type('#d-name', '<img src=x onerror=window.__xss=7>.test');
  await page.keyboard.press('Enter');
  if (await until(page, () => document.getElementById('d-name-error').textContent !== '', null, 'the refused domain name shows an error')) {
    check(await page.$eval('#d-name', (e) => e.getAttribute('aria-invalid') === 'true'), 'the refused field is not marked invalid');
    check(await page.evaluate(() => window.__xss === undefined && document.querySelectorAll('main img').length === 0), 'the refused name became markup');
  }
  check(expected(problems, 422, '/v1/domains'), 'the bad domain name was not answered 422');
  await page.$eval('#d-name', (e) => { e.value = ''; });
  await page.type('#d-name', 'Shop.Console.Test');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#domain #records table', { timeout: WAIT });
  check((await page.evaluate(() => location.hash)) === '#/domains/shop.console.test', 'adding opens the domain: ' + await page.evaluate(() => location.hash));
  check((await text(page, '#domain-name')) === 'shop.console.test', 'the domain view names the domain');
  const recs = await page.$$eval('#records tbody tr', (trs) => trs.map((tr) => ({
    purpose: tr.dataset.purpose, type: tr.cells[0].textContent, name: tr.cells[1].textContent, value: tr.cells[2].textContent,
    copy: !!tr.querySelector('button[data-copy]'),
  })));
  const dkim = recs.filter((r) => r.purpose === 'dkim' && r.type === 'TXT' && /^mf\d{8}-[0-9a-f]{8}-[er]\._domainkey\.shop\.console\.test$/.test(r.name));
  check(dkim.some((r) => r.value.startsWith('v=DKIM1; k=ed25519; p=')), 'no Ed25519 DKIM record: ' + JSON.stringify(recs));
  check(dkim.some((r) => r.value.startsWith('v=DKIM1; k=rsa; p=')), 'no RSA DKIM record: ' + JSON.stringify(recs));
  check(recs.some((r) => r.purpose === 'spf' && r.name === 'shop.console.test' && r.value.startsWith('v=spf1 ')), 'no SPF record: ' + JSON.stringify(recs));
  check(recs.some((r) => r.purpose === 'dmarc' && r.name === '_dmarc.shop.console.test' && r.value.startsWith('v=DMARC1; p=none')), 'no DMARC record: ' + JSON.stringify(recs));
  check(recs.length >= 4 && recs.every((r) => r.copy), 'a record has no copy button');
  const zone = await text(page, '#zone');
  check(zone.startsWith('; shop.console.test: status pending, added '), 'the zone lines do not start with the domain: ' + zone.slice(0, 80));
  check(/^_dmarc\.shop\.console\.test\.\t3600\tIN\tTXT\t"v=DMARC1; p=none; /m.test(zone), 'no DMARC zone line: ' + zone);
  check(/\._domainkey\.shop\.console\.test\.\t3600\tIN\tTXT\t\( "v=DKIM1; k=rsa; p=[^"]{237}" "[^"]+" \)\t; dkim \(\w+ key\)$/m.test(zone),
    'the RSA key is not split into 255-octet strings: ' + zone);
  check((await text(page, '#checks')).includes('not looked up yet'), 'the new domain does not say it was not checked yet');
  // Keyboard: Verify is reached and pressed with the keyboard.
  await page.focus('#verify');
  await page.keyboard.press('Enter');
  if (await until(page, () => document.querySelectorAll('#checks tbody tr').length >= 4, null, 'the verification shows its per-record results')) {
    const res = await page.$$eval('#checks tbody tr', (trs) => trs.map((tr) => ({ found: tr.cells[1].textContent, lookup: tr.querySelector('.lookup').textContent })));
    check(res.every((r) => r.found === 'no' && r.lookup !== '—' && r.lookup !== ''), 'a record has no lookup failure: ' + JSON.stringify(res));
    check((await page.$eval('#domain .page-head .badge', (b) => b.textContent + ' ' + b.className)) === 'failed badge bad', 'the domain is not shown failed');
    check((await text(page, '#domain-note')).includes('Not verified'), 'the verification result is not said');
  }
  await page.click('button[data-copy="0"]');
  await until(page, () => /Copied|Selected/.test(document.querySelector('button[data-copy="0"]').textContent), null, 'the copy button answers');
  await shot(page, 'domain', 1280);
  await axe(page, 'domain');
  await page.setViewport({ width: 390, height: 844 });
  await shot(page, 'domain', 390);
  await axe(page, 'domain at 390');
  const dOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(dOverflow <= 0, 'domain at 390 px scrolls sideways by ' + dOverflow + ' px');
  await page.setViewport({ width: 1280, height: 900 });
  await go(page, '#/domains', '#domain-list table');
  check((await page.$eval('#domain-list tr[data-domain="shop.console.test"] .badge', (b) => b.textContent)) === 'failed', 'the list does not show the domain failed');
  await page.click('#domain-list tr[data-domain="shop.console.test"] a');
  await page.waitForSelector('#remove', { timeout: WAIT });
  await page.click('#remove'); // the confirm dialog is accepted by watch()
  await page.waitForSelector('#domain-list > *:not(.loading)', { timeout: WAIT });
  await until(page, () => !document.querySelector('#domain-list tr[data-domain]'), null, 'the removed domain leaves the list');

  mark('// --- every page at both widt');
  // --- every page at both widths, axe on each ---------------------------
  for (const width of [1280, 390]) {
    await page.setViewport({ width, height: width === 390 ? 844 : 900 });
    for (const p of PAGES) {
      await go(page, p.hash, p.ready);
      if (p.name === 'overview') await until(page, () => document.querySelectorAll('#overview .uplot').length === 2, null, 'charts at ' + width);
      mark('ready ' + p.name + width);
      await shot(page, p.name, width);
      mark('shot');
      // axe on every page at 1280; at 390 on the pages whose layout changes
      // most (the test's time is kept short: axe is its slowest part).
      if (width === 1280 || p.axe390) await axe(page, p.name + ' at ' + width);
      mark('axe');
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(overflow <= 0, p.name + ' at ' + width + ' px scrolls sideways by ' + overflow + ' px');
    }
  }
  check((await cspViolations(page)).length === 0, 'CSP violations: ' + JSON.stringify(await cspViolations(page)));
  await page.evaluate(() => { document.querySelector('#signout').click(); });
  await page.waitForSelector('#key', { timeout: WAIT });
  await page.setViewport({ width: 390, height: 844 });
  await shot(page, 'signin', 390);
  check(await page.evaluate(() => !sessionStorage.getItem('mailferry.console.key')), 'sign-out leaves the key in sessionStorage');
  for (const p of problems) failures.push(p);

  mark('// --- a read-only key');
  // --- a read-only key: no replay, no retry ------------------------------
  const ctxR = await browser.createBrowserContext();
  const rp = await ctxR.newPage();
  const rproblems = watch(rp, 'read-only');
  await rp.setViewport({ width: 1280, height: 900 });
  await rp.goto(BASE + '/console/', { waitUntil: 'load' });
  await rp.waitForSelector('#key', { timeout: WAIT });
  await rp.type('#key', READ_KEY);
  await rp.click('#signin-submit');
  await rp.waitForSelector('#overview .stats', { timeout: WAIT });
  check(await rp.$eval('a[data-page="replay"]', (a) => a.parentElement.hidden && a.offsetParent === null), 'a read-only key sees Replay in the menu');
  check(await rp.$eval('a[data-page="webhooks"]', (a) => a.parentElement.hidden), 'a read-only key sees Webhooks in the menu');
  check(await rp.$eval('a[data-page="keys"]', (a) => a.parentElement.hidden), 'a read-only key sees API keys in the menu');
  check(await rp.$eval('a[data-page="domains"]', (a) => a.parentElement.hidden), 'a read-only key sees Domains in the menu');
  await go(rp, '#/domains', 'main .state');
  check((await rp.$('#domain-form')) === null && (await text(rp, 'main .state')).includes('admin'), 'a read-only key reaches the Domains page');
  await go(rp, '#/replay', 'main .state');
  check((await rp.$('#dry-run')) === null && (await rp.$('#confirm')) === null, 'a read-only key can reach the replay button');
  await go(rp, '#/message/' + BOUNCED_ID, '#message .last-reply');
  check((await rp.$('#retry')) === null && (await rp.$('#cancel')) === null, 'a read-only key sees Retry or Cancel');
  await axe(rp, 'message (read-only)');
  check((await cspViolations(rp)).length === 0, 'CSP violations (read-only): ' + JSON.stringify(await cspViolations(rp)));
  for (const p of rproblems) failures.push(p);
} catch (e) {
  failures.push('exception: ' + (e && e.stack || e));
} finally {
  mark('end');
  await browser.close();
}

console.log(JSON.stringify({ ok: failures.length === 0, checks, failures, notes, screenshots: shots.length, ms: Date.now() - T0, timing }));
process.exit(failures.length === 0 ? 0 : 1);
