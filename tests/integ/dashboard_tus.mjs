// SPDX-License-Identifier: MIT
// The dashboard's upload panel in a real browser, driven by
// t_dashboard_tus.sh: a file dragged onto the drop zone (a drop event
// with a DataTransfer holding it) is sent by tus; the page is reloaded
// midway; after it the upload is listed as interrupted, the same file is
// dropped again, and the upload goes on from the server's offset and
// completes; then a file chosen with the file picker. The page is served
// through throttle.mjs, so that the upload lasts long enough to reload.
//
// Input in the environment: HTTP_URL (the gateway), PF_USER, PF_PASS,
// CHROMIUM, PF_SIZE (bytes of the dragged file), PF_DRAG
// (where its bytes are written too), PF_PICK (a file for the picker),
// PF_OUT (screenshots), optionally
// PF_NODE_MODULES, and PF_SPKI for an https:// HTTP_URL.
// Output: "ok|fail<TAB>description<TAB>detail" lines for tap_from, and
// "session<TAB>ID<TAB>NAME" for each completed upload; "skip<TAB>..."
// and exit 3 without playwright-core.

import fs from 'node:fs';
import path from 'node:path';
import { check, launch, playwrightOrSkip, signIn, status, waitFor }
  from './driver.mjs';
import { startThrottle } from './throttle.mjs';

const env = (n) => process.env[n] ?? '';
const URL0 = env('HTTP_URL');
const SPKI = URL0.startsWith('https:') ? env('PF_SPKI') : null;
const SIZE = Number(env('PF_SIZE'));
/* 48 MiB at 4 MiB/s: about 12 s, time enough to reload midway. */
const RATE = 4 * 1024 * 1024;

/*
 * Drops a file of SIZE bytes named drag.bin, made in the page from a
 * fixed seed (the same bytes, and lastModified, after a reload) onto
 * the drop zone.
 */
async function dropFile(page) {
  await page.evaluate(async (size) => {
    const bytes = new Uint8Array(size);
    let x = 2463534242;
    for (let i = 0; i < size; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      bytes[i] = x & 0xff;
    }
    bytes.set(new TextEncoder().encode('pf-data '));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'drag.bin', { lastModified: 1e12 }));
    const drop = document.getElementById('drop');
    drop.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt,
      bubbles: true, cancelable: true }));
    drop.dispatchEvent(new DragEvent('drop', { dataTransfer: dt,
      bubbles: true, cancelable: true }));
  }, SIZE);
}

/* The same bytes in PF_DRAG, for t_dashboard_tus.sh to compare. */
function writeDragged() {
  const bytes = new Uint8Array(SIZE);
  let x = 2463534242;
  for (let i = 0; i < SIZE; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    bytes[i] = x & 0xff;
  }
  bytes.set(new TextEncoder().encode('pf-data '));
  fs.writeFileSync(env('PF_DRAG'), bytes);
}

/* The upload line of name: {state, value, text, session}, or null. */
function lineOf(page, name) {
  return page.evaluate((n) => {
    for (const li of document.querySelectorAll('#upload-list li'))
      if (li.querySelector('.name').textContent === n) {
        const bar = li.querySelector('progress');
        return { state: li.dataset.state, value: bar ? bar.value : null,
          text: li.querySelector('.state').textContent,
          session: li.dataset.session ?? null,
          resumedFrom: Number(li.dataset.resumedFrom ?? -1) };
      }
    return null;
  }, name);
}

/* Signs in, to be remembered across the reload; true once the upload
 * panel shows. */
async function signInKept(page) {
  await signIn(page, env('PF_USER'), env('PF_PASS'), true);
  return waitFor(() => page.isVisible('#drop'), 15000);
}

async function run(page, base) {
  const problems = [];
  page.on('pageerror', (e) => problems.push(String(e)));
  await page.goto(`${base}/`);
  check('signed in, the upload panel shows', await signInKept(page));
  await dropFile(page);
  const mid = await waitFor(async () => {
    const l = await lineOf(page, 'drag.bin');
    return l && l.value >= 0.2 && l.value < 0.6 ? l : null;
  }, 60000);
  check('the dropped file is sending, with its progress bar', mid !== null,
    JSON.stringify(await lineOf(page, 'drag.bin')));
  await page.screenshot({ path: path.join(env('PF_OUT'),
    'dashboard-upload.png'), fullPage: true });
  await page.reload();
  const cut = await waitFor(async () => {
    const l = await lineOf(page, 'drag.bin');
    return l && l.state === 'interrupted' ? l : null;
  }, 15000);
  check('after the reload it is listed as interrupted', cut !== null,
    JSON.stringify(await lineOf(page, 'drag.bin')));
  await dropFile(page);
  const done = await waitFor(async () => {
    const l = await lineOf(page, 'drag.bin');
    return l && (l.state === 'complete' || l.state === 'failed') ? l : null;
  }, 120000);
  check('dropped again, it completes', done?.state === 'complete',
    JSON.stringify(done));
  check('... resumed from the middle, not started over',
    done?.resumedFrom > 0 && done.resumedFrom < SIZE, JSON.stringify(done));
  if (done?.session)
    console.log(`session\t${done.session}\tdrag.bin`);
  await page.setInputFiles('#upload-pick', env('PF_PICK'));
  const picked = await waitFor(async () => {
    const l = await lineOf(page, path.basename(env('PF_PICK')));
    return l && l.state === 'complete' ? l : null;
  }, 60000);
  check('a file from the picker completes', picked !== null);
  if (picked?.session)
    console.log(`session\t${picked.session}\t${path.basename(
      env('PF_PICK'))}`);
  check('no page error', problems.length === 0, problems.join(' | '));
}

const pw = playwrightOrSkip();
writeDragged();
const port = Number(new URL(URL0).port);
const slow = await startThrottle(port, RATE);
const base = `${new URL(URL0).protocol}//127.0.0.1:${slow.port}`;
const browser = await launch(pw, env('CHROMIUM'), SPKI);
try {
  await run(await browser.newPage(), base);
} finally {
  await browser.close();
  slow.close();
}
process.exit(status());
