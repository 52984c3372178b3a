// SPDX-License-Identifier: MIT
// A transfer of many files in the dashboard, driven by
// t_dashboard_transfer.sh: sign in, find the transfer's row (marked as
// one, with its number of files), open it, see every entry of GET /files
// with its path, size, state and receipt, and download one file and the
// tar through the page's links; no console error or page error on the
// way.
//
// Input in the environment: HTTP_URL, PF_USER, PF_PASS, PF_SID (the
// transfer), PF_FILES (its GET /files answer, as the shell read it),
// PF_SRC (the directory the transfer's paths are relative to), PF_PICK
// (the path of the file to download), PF_TMP (where the downloads go:
// page-file and page.tar, for the shell to check), PF_OUT (the
// screenshot), CHROMIUM, and optionally PF_NODE_MODULES, and PF_SPKI for
// an https:// HTTP_URL.
// Output on stdout: one "ok|fail<TAB>description<TAB>detail" line per
// check, for lib.sh's tap_from; "skip<TAB>reason" and exit 3 if
// playwright-core is missing.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { check, launch, need, playwrightOrSkip, runMain, saveDownload,
  signIn, waitFor, watchErrors } from './driver.mjs';

const URL0 = need('HTTP_URL');
const USER = need('PF_USER');
const PASS = need('PF_PASS');
const SID = need('PF_SID');
const FILES = JSON.parse(fs.readFileSync(need('PF_FILES'), 'utf8')).files;
const SRC = need('PF_SRC');
const PICK = need('PF_PICK');
const TMP = need('PF_TMP');
const OUT = need('PF_OUT');
const CHROMIUM = need('CHROMIUM');
const SPKI = URL0.startsWith('https:') ? need('PF_SPKI') : null;

const sha256 = (file) => crypto.createHash('sha256')
  .update(fs.readFileSync(file)).digest('hex');
/* The rows of the dialog's file list, as their cells' texts. */
const listed = (page) => page.evaluate(() =>
  [...document.querySelectorAll('#transfer-files tr')].map((tr) => {
    const cell = (k) => tr.querySelector(`[data-col="${k}"]`).textContent;
    const a = tr.querySelector('a.file-download');
    return { path: cell('path'), size: cell('size'), state: cell('state'),
      receipt: cell('receipt'), link: a === null ? null : a.dataset.path };
  }));

async function transfer(page) {
  const row = `#sessions-body tr[data-id="${SID}"]`;
  const cells = await waitFor(() => page.evaluate((sel) => {
    const tr = document.querySelector(sel);
    return tr === null ? null : { transfer: tr.classList.contains(
      'transfer'), size: tr.querySelector('[data-col="size"]').textContent,
    state: tr.querySelector('[data-col="state"]').textContent };
  }, row), 30000);
  check('the transfer has a row, marked as a transfer, complete',
    cells !== null && cells.transfer && cells.state === 'complete',
    JSON.stringify(cells));
  check(`... which says it holds ${FILES.length} files`, cells !== null &&
    cells.size.endsWith(`, ${FILES.length} files`), cells && cells.size);
  await page.click(row);
  const rows = await waitFor(async () => {
    const r = await listed(page);
    return r.length === FILES.length ? r : null;
  }, 30000);
  check(`the row opens to its file list: all ${FILES.length} entries`,
    rows !== null, JSON.stringify(await listed(page)));
  check('... and no single-file download button for a transfer',
    await page.evaluate(() =>
      document.getElementById('detail-download').hidden));
  if (rows === null)
    return;
  const bad = [];
  FILES.forEach((f, i) => {
    const r = rows[i];
    const p = f.path ?? f.client;
    const link = f.state === 'stored' && !f.dir ? p : null;
    if (r.path !== p || r.state !== f.state ||
        r.receipt !== (f.digest ?? '–') || r.link !== link ||
        (f.dir ? r.size !== 'folder' : r.size === ''))
      bad.push(`${JSON.stringify(r)} for ${JSON.stringify(f)}`);
  });
  check('each entry with its path, size, state, receipt and a download ' +
    'link if stored, as GET /files lists them', bad.length === 0,
    bad.slice(0, 3).join(' | '));
  check('the refused executable is listed with its state',
    rows.some((r) => r.path.endsWith('run.sh') &&
      r.state === 'forbidden_type' && r.link === null),
    JSON.stringify(rows.filter((r) => r.path.endsWith('run.sh'))));
  check('the Unicode name is shown as it is',
    rows.some((r) => r.path.endsWith('café ☕.txt')));
  await page.screenshot({ path: path.join(OUT, 'dashboard-transfer.png'),
    fullPage: true });

  const file = path.join(TMP, 'page-file');
  const name = await saveDownload(page,
    `#transfer-files a[data-path="${PICK}"]`, file);
  const want = sha256(path.join(SRC, PICK));
  check(`a file's link downloads it (${name}): SHA-256 of the source`,
    sha256(file) === want, `${want} ${sha256(file)}`);
  const tar = path.join(TMP, 'page.tar');
  const tname = await saveDownload(page, '#transfer-tar', tar);
  const size = fs.statSync(tar).size;
  check(`"Download all (tar)" downloads the tar (${tname}, ${size} bytes)`,
    size > 0 && size % 512 === 0 &&
    fs.readFileSync(tar).subarray(257, 262).toString() === 'ustar');
  check('the dialog reports no error',
    (await page.textContent('#detail-status')) === '',
    await page.textContent('#detail-status'));
}

async function main() {
  const pw = playwrightOrSkip();
  const browser = await launch(pw, CHROMIUM, SPKI);
  const problems = [];
  try {
    const ctx = await browser.newContext({ acceptDownloads: true,
      viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    watchErrors(page, 'transfer page', problems);
    await page.goto(`${URL0}/`);
    await signIn(page, USER, PASS);
    await transfer(page);
    await ctx.close();
  } finally {
    await browser.close();
  }
  check('no console error or page error', problems.length === 0,
    problems.slice(0, 8).join(' | '));
}

runMain(main, 3);
