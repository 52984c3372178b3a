// SPDX-License-Identifier: MIT
// The dashboard (www/) in a real browser, driven by t_dashboard.sh: sign
// in, "not signed in" and "no sessions", an upload watched to 100 % and
// "complete" (with a hostile file name), its chunk map, its download
// through the page's link, a cancel from the page, the polling fallback
// and "server unreachable", the narrow layout, sign-out; and no console
// error or page error on the way.
//
// Input in the environment (set by t_dashboard.sh): HTTP_URL, PF_PORT,
// PARAFLOW, PF_USER, PF_PASS, PF_BIG, PF_SMALL, PF_TMP, PF_OUT, CHROMIUM,
// and optionally PF_NODE_MODULES, and PF_SPKI (the base64
// SHA-256 of the gateway's public key) for an https:// HTTP_URL.
// Screenshots go to PF_OUT.
// Output on stdout: one
// "ok|fail<TAB>description<TAB>detail" line per check, for lib.sh's
// tap_from; "skip<TAB>reason" and exit 3 if playwright-core is missing.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { check, launch, need, note, playwrightOrSkip, runMain, saveDownload,
  signIn, sleep, waitFor, watchErrors } from './driver.mjs';
import { startThrottle } from './throttle.mjs';

const URL0 = need('HTTP_URL');
const NATIVE_PORT = Number(need('PF_PORT'));
const PARAFLOW = need('PARAFLOW');
const USER = need('PF_USER');
const PASS = need('PF_PASS');
const BIG = need('PF_BIG');
const SMALL = need('PF_SMALL');
const TMP = need('PF_TMP');
const OUT = need('PF_OUT');
const CHROMIUM = need('CHROMIUM');
/* An HTTPS gateway's self-signed key: trusted by its hash, nothing else. */
const SPKI = URL0.startsWith('https:') ? need('PF_SPKI') : null;

const HOSTILE = '<img src=x onerror=alert(1)>.txt';
const MIB = 1024 * 1024;
/* 256 MiB at 8 MiB/s: about 32 s to watch, 10 s of it between 40 and
 * 70 % and then still 10 s to open its chunk map; 128 MiB at 2 MiB/s: over
 * a minute, time enough to cancel it. A page on a loaded machine can be
 * seconds behind (faster rates left it 3 s to see the upload mid-way).
 * Every wait for the page is 30 s: it ends as soon as the page shows. */
const WATCH_RATE = 8 * MIB;
const CANCEL_RATE = 2 * MIB;
const PAGE_WAIT = 30000;

/* --- Uploads --------------------------------------------------------- */

const children = new Set();
process.on('exit', () => {
  for (const c of children)
    c.kill('SIGTERM');
});

/* Runs paraflow upload; resolves (done) to {code, json, err}. */
function upload(port, file, name) {
  const child = spawn(PARAFLOW, ['upload', '--port', String(port), '--user',
    USER, '--secret', PASS, '--file', file, '--name', name, '--threads',
    '1', '--no-resume', '--quiet', '--json', '--timeout', '30',
    '--give-up', '30'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const done = new Promise((resolve) => child.on('close', (code) => {
    children.delete(child);
    let json = null;
    try {
      json = JSON.parse(out);
    } catch {
      /* left null: the check shows out */
    }
    resolve({ code, json, out, err });
  }));
  return { child, done };
}

function sha256(file) {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256');
    fs.createReadStream(file).on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });
}

/* --- The page -------------------------------------------------------- */

/* The row of the session named name: its cells' texts, or null. */
function rowOf(page, name) {
  return page.evaluate((n) => {
    for (const tr of document.querySelectorAll('#sessions-body tr')) {
      const cell = (k) => tr.querySelector(`[data-col="${k}"]`);
      if (cell('name').textContent !== n)
        continue;
      const r = { id: tr.dataset.id };
      for (const k of ['name', 'user', 'size', 'progress', 'rate', 'streams',
        'retries', 'state', 'age'])
        r[k] = cell(k).textContent;
      r.value = tr.querySelector('progress').value;
      return r;
    }
    return null;
  }, name);
}

const conn = (page) => page.evaluate(() => {
  const c = document.getElementById('conn');
  return { state: c.dataset.state, text: c.textContent };
});

const legend = (page) => page.evaluate(() => {
  const r = {};
  for (const s of document.querySelectorAll('#chunk-legend [data-kind]'))
    r[s.dataset.kind] = Number(s.textContent.replace(/,/g, ''));
  return r;
});

const visible = (page, sel) => page.evaluate((s) => {
  const e = document.querySelector(s);
  return e !== null && e.getClientRects().length > 0;
}, sel);

/* --- The checks ------------------------------------------------------ */

async function main() {
  const pw = playwrightOrSkip();
  if (SPKI)
    await untrusted(pw);
  const browser = await launch(pw, CHROMIUM, SPKI);
  const problems = [];
  try {
    await notSignedIn(browser, problems);
    await dashboard(browser, problems);
    await fallback(browser, problems);
  } finally {
    await browser.close();
  }
  check('no console error, page error or dialog on any page',
    problems.length === 0, problems.slice(0, 8).join(' | '));
}

/* Without the key's hash, Chromium refuses the HTTPS gateway: the trust
 * comes from that flag alone, not from errors ignored in general. */
async function untrusted(pw) {
  const browser = await launch(pw, CHROMIUM, null);
  let why = '';
  try {
    const page = await browser.newPage();
    /* A browser just started may still see its network "change". */
    for (let i = 0; i < 5; i++) {
      why = '';
      try {
        await page.goto(URL0, { timeout: 60000 });
      } catch (e) {
        why = String(e.message).split('\n')[0];
      }
      if (!/ERR_NETWORK_CHANGED/.test(why))
        break;
      await sleep(500);
    }
  } finally {
    await browser.close();
  }
  check('without the key\'s hash, Chromium refuses the page (a ' +
    'certificate error)', /ERR_CERT/.test(why), why || 'page loaded');
}

/* A wrong password, in a page of its own that watches through the
 * DevTools protocol whether the browser would ask for credentials itself
 * (Fetch.authRequired comes exactly where its login dialog would). */
async function notSignedIn(browser, problems) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const unwatch = watchErrors(page, 'sign-in page', problems,
    [/status of 401 \(Unauthorized\)/]);
  const res = await page.goto(`${URL0}/`);
  const csp = res.headers()['content-security-policy'] || '';
  check('the page is served with its Content-Security-Policy',
    res.status() === 200 && csp.includes("default-src 'self'"), csp);
  const c = await waitFor(async () => {
    const v = await conn(page);
    return v.state === 'signed-out' ? v : null;
  }, PAGE_WAIT);
  check('not signed in: the page says so', c !== null &&
    c.text === 'Not signed in', JSON.stringify(c));
  check('not signed in: the sign-in form is shown, the dashboard is not',
    await visible(page, '#signin-form') && !await visible(page, '#dash'));
  check('every input of the sign-in form has a label',
    await page.evaluate(() => [...document.querySelectorAll('input')]
      .every((i) => i.labels.length > 0)));

  const cdp = await ctx.newCDPSession(page);
  const asked = [];
  cdp.on('Fetch.requestPaused', (e) => cdp.send('Fetch.continueRequest',
    { requestId: e.requestId }).catch(() => {}));
  cdp.on('Fetch.authRequired', (e) => {
    asked.push(e.request.url);
    cdp.send('Fetch.continueWithAuth', { requestId: e.requestId,
      authChallengeResponse: { response: 'CancelAuth' } }).catch(() => {});
  });
  await cdp.send('Fetch.enable', { handleAuthRequests: true,
    patterns: [{ urlPattern: '*' }] });

  await signIn(page, USER, 'not-the-password');
  const err = await waitFor(async () =>
    (await page.textContent('#signin-error')).trim(), PAGE_WAIT);
  check('a wrong password: "Wrong user or password."',
    err === 'Wrong user or password.', err);
  check('a wrong password: still not signed in',
    (await conn(page)).state === 'signed-out' &&
    !await visible(page, '#dash'));
  await sleep(300);
  check('a 401 to the page\'s fetch() does not make the browser ask for ' +
    'credentials itself', asked.length === 0, asked.join(' '));
  /* The control: the detector does see a prompt where one would come.
   * The page is no longer the dashboard then (a 404 for /favicon.ico). */
  unwatch();
  await page.goto(`${URL0}/api/v1/stats`).catch(() => {});
  await waitFor(async () => asked.length >= 1, PAGE_WAIT);
  check('... while a plain navigation to the API would (the control)',
    asked.length >= 1, `${asked.length} prompts`);
  await ctx.close();
}

async function dashboard(browser, problems) {
  const ctx = await browser.newContext({ acceptDownloads: true,
    viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  watchErrors(page, 'dashboard', problems);
  await page.goto(`${URL0}/`);
  await signIn(page, USER, PASS);
  const c = await waitFor(async () => {
    const v = await conn(page);
    return v.state === 'live' ? v : null;
  }, PAGE_WAIT);
  check('signed in: live through the event stream', c !== null,
    JSON.stringify(await conn(page)));
  check('signed in: the user is shown',
    (await page.textContent('#account-user')) === USER);
  check('no sessions: the page says so, and shows no table',
    await visible(page, '#sessions-empty') &&
    !await visible(page, '#sessions') &&
    (await page.textContent('#sessions-empty')).includes('No sessions yet'));
  check('the table has a header for each of its 9 columns',
    await page.evaluate(() =>
      document.querySelectorAll('#sessions thead th[scope="col"]').length)
      === 9);

  /* An upload to watch, named to break a page that uses innerHTML. */
  const slow = await startThrottle(NATIVE_PORT, WATCH_RATE);
  const a = upload(slow.port, BIG, HOSTILE);
  const mid = await waitFor(async () => {
    const r = await rowOf(page, HOSTILE);
    return r && r.state === 'receiving' && r.value >= 40 && r.value <= 70
      ? r : null;
  }, 60000);
  check('the upload shows up, receiving, with a progress bar', mid !== null,
    JSON.stringify(await rowOf(page, HOSTILE)));
  if (mid !== null) {
    await page.screenshot({ path: path.join(OUT,
      'dashboard-mid-upload.png'), fullPage: true });
    note(`mid-upload: ${JSON.stringify(mid)}`);
    check('mid-upload: the row shows a rate, a stream and the user',
      mid.rate.endsWith('/s') && mid.streams === '1' && mid.user === USER,
      JSON.stringify(mid));
    check('mid-upload: the totals show throughput',
      await page.evaluate(() => !document.querySelector(
        '[data-figure="Throughput"] dd').textContent.startsWith('0 ')));
    check('mid-upload: the chart has samples above zero',
      !(await page.textContent('#chart-summary')).startsWith('Now 0 B/s · ' +
        'peak 0 B/s'), await page.textContent('#chart-summary'));

    /* The keyboard way into the detail view, and back. */
    await page.focus(`#sessions-body tr[data-id="${mid.id}"]`);
    await page.keyboard.press('Enter');
    const partial = await waitFor(async () => {
      const l = await legend(page);
      return l.received > 0 && l.pending + l['being received'] > 0 ? l : null;
    }, PAGE_WAIT);
    check('Enter on a row opens its chunk map; mid-upload it has ' +
      'received and pending chunks', partial !== null &&
      await page.evaluate(() => document.getElementById('detail').open),
      JSON.stringify(await legend(page)));
    await page.screenshot({ path: path.join(OUT,
      'dashboard-chunk-map.png') });
    await page.keyboard.press('Escape');
    check('Escape closes the detail view and the row has the focus again',
      await page.evaluate((id) => !document.getElementById('detail').open &&
        document.activeElement.dataset.id === id, mid.id));
  }
  const doneRow = await waitFor(async () => {
    const r = await rowOf(page, HOSTILE);
    return r && r.state === 'complete' ? r : null;
  }, 120000);
  check('the upload reaches 100 % and "complete"', doneRow !== null &&
    doneRow.progress === '100 %' && doneRow.value === 100,
    JSON.stringify(await rowOf(page, HOSTILE)));
  const ra = await a.done;
  slow.close();
  check('the upload client exits 0', ra.code === 0 && ra.json !== null &&
    ra.json.status === 'ok', `exit ${ra.code}: ${ra.out} ${ra.err}`);
  const id = ra.json ? ra.json.session : '';
  check('the hostile name is shown as text, exactly as stored',
    ra.json !== null && ra.json.name === HOSTILE && doneRow !== null &&
    doneRow.name === HOSTILE, ra.json ? ra.json.name : '');
  check('... and became no element (no <img> in the page)',
    await page.evaluate(() => document.querySelectorAll('img').length === 0));

  /* The finished session: full chunk map, receipt, download. */
  await page.click(`#sessions-body tr[data-id="${id}"]`);
  const full = await waitFor(async () => {
    const l = await legend(page);
    return l.received === ra.json.chunks ? l : null;
  }, PAGE_WAIT);
  check(`the chunk map of the finished upload: all ${ra.json.chunks} ` +
    'chunks received', full !== null, JSON.stringify(await legend(page)));
  check('the detail view shows the name and the receipt',
    await page.evaluate(([n, d]) =>
      document.getElementById('detail-name').textContent === n &&
      document.querySelector('[data-field="Receipt"]').textContent === d,
    [HOSTILE, ra.json.digest]));
  const got = path.join(TMP, 'download.bin');
  const suggested = await saveDownload(page, '#detail-download', got);
  const [want, have] = await Promise.all([sha256(BIG), sha256(got)]);
  check('the download link gives the file: SHA-256 matches', want === have,
    `${want} ${have}`);
  note(`download suggested name: ${suggested}`);
  fs.rmSync(got, { force: true });
  await page.keyboard.press('Escape');

  /* Cancel a running upload from the page. */
  const slower = await startThrottle(NATIVE_PORT, CANCEL_RATE);
  const b = upload(slower.port, SMALL, 'cancel-me.bin');
  const running = await waitFor(async () => {
    const r = await rowOf(page, 'cancel-me.bin');
    return r && r.state === 'receiving' && r.value > 0 ? r : null;
  }, 60000);
  check('a second upload shows up receiving', running !== null);
  if (running !== null) {
    await page.click(`#sessions-body tr[data-id="${running.id}"]`);
    await page.click('#detail-cancel');
    check('cancel asks first, the focus on "No, keep it"',
      await page.evaluate(() =>
        !document.getElementById('detail-confirm').hidden &&
        document.activeElement.id === 'detail-confirm-no'));
    check('... and nothing is cancelled yet',
      (await rowOf(page, 'cancel-me.bin')).state === 'receiving');
    await page.click('#detail-confirm-yes');
    const cancelled = await waitFor(async () => {
      const r = await rowOf(page, 'cancel-me.bin');
      return r && r.state === 'cancelled' ? r : null;
    }, PAGE_WAIT);
    check('after the confirm the session shows "cancelled"',
      cancelled !== null, JSON.stringify(await rowOf(page, 'cancel-me.bin')));
    check('the detail view says so', (await page.textContent(
      '#detail-status')).startsWith('Cancelled') &&
      (await page.textContent('#detail-state')) === 'cancelled');
  }
  const rb = await Promise.race([b.done, sleep(120000).then(() => null)]);
  slower.close();
  check('the cancelled upload\'s client exits with the "cancelled" error',
    rb !== null && rb.code !== 0 && rb.json !== null && rb.json.error &&
    rb.json.error.code === 'cancelled',
    rb === null ? 'still running after 120 s' : `exit ${rb.code}: ${rb.out}`);
  fs.writeFileSync(path.join(TMP, 'ids'), `${id}\n${running ? running.id
    : ''}\n${rb === null ? '' : rb.code}\n`);
  await page.keyboard.press('Escape');

  /* Narrow screen: the table becomes cards. */
  await page.setViewportSize({ width: 390, height: 844 });
  await sleep(300);
  check('below 640 px the rows become cards (no column headers shown)',
    await page.evaluate(() => {
      const tr = document.querySelector('#sessions-body tr');
      const th = document.querySelector('#sessions thead');
      return getComputedStyle(tr).display === 'block' &&
        th.getBoundingClientRect().width <= 1;
    }));
  check('... and nothing is wider than the screen',
    await page.evaluate(() =>
      document.documentElement.scrollWidth <= window.innerWidth));
  await page.screenshot({ path: path.join(OUT, 'dashboard-narrow.png'),
    fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });

  /* Signing out forgets the credentials. */
  await page.click('#sign-out');
  check('sign-out: back to "Not signed in" and the sign-in form',
    (await conn(page)).text === 'Not signed in' &&
    await visible(page, '#signin-form') && !await visible(page, '#dash'));
  await page.reload();
  await waitFor(async () => (await conn(page)).state === 'signed-out',
    PAGE_WAIT);
  check('sign-out: a reload is still not signed in',
    (await conn(page)).state === 'signed-out' &&
    await page.evaluate(() => sessionStorage.length === 0));
  await ctx.close();
}

/* No event stream: polling; no server: "unreachable"; and back. The
 * failed requests are made to fail here, so their console lines are
 * expected on this page. */
async function fallback(browser, problems) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  watchErrors(page, 'polling page', problems,
    [/status of 503/, /net::ERR_CONNECTION_REFUSED/, /net::ERR_FAILED/]);
  await page.route('**/api/v1/events', (r) => r.fulfill({ status: 503,
    contentType: 'application/json',
    body: '{"error":{"code":"busy","message":"made to fail"}}' }));
  await page.goto(`${URL0}/`);
  await signIn(page, USER, PASS);
  const polling = await waitFor(async () =>
    (await conn(page)).state === 'polling', PAGE_WAIT);
  check('without the event stream: "Polling every 2 s"', polling,
    JSON.stringify(await conn(page)));
  const rows = await waitFor(async () => {
    const x = await rowOf(page, HOSTILE);
    const y = await rowOf(page, 'cancel-me.bin');
    return x && y ? [x.state, y.state] : null;
  }, PAGE_WAIT);
  check('... and the sessions are listed all the same', rows !== null &&
    rows[0] === 'complete' && rows[1] === 'cancelled', JSON.stringify(rows));

  await page.route('**/api/**', (r) => r.abort('connectionrefused'));
  const down = await waitFor(async () =>
    (await conn(page)).state === 'unreachable', PAGE_WAIT);
  check('no answer from the server: "Server unreachable"', down,
    JSON.stringify(await conn(page)));
  check('... with a notice that the figures are old',
    (await page.textContent('#notice')).startsWith('The server does not ' +
      'answer'));
  check('... and the sessions stay shown', await rowOf(page, HOSTILE) !== null);
  await page.unroute('**/api/**');
  const back = await waitFor(async () =>
    (await conn(page)).state === 'polling', PAGE_WAIT);
  check('the server answers again: back to polling, the notice gone',
    back && (await page.textContent('#notice')) === '',
    JSON.stringify(await conn(page)));
  await ctx.close();
}

runMain(main, 10);
