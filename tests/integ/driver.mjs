// SPDX-License-Identifier: MIT
// What the node drivers of the integration tests share (dashboard.mjs,
// dashboard_transfer.mjs, dashboard_tus.mjs, tus.mjs): their result
// lines for lib.sh's tap_from, their input from the environment, finding
// an npm package, waiting for a condition, and a headless Chromium with
// the page's sign-in.

import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/* --- Results --------------------------------------------------------- */

let failures = 0;
const clean = (s) => String(s).replace(/[\t\r\n]+/g, ' ');

/* One "ok|fail<TAB>description<TAB>detail" line; returns cond. */
export function check(desc, cond, detail = '') {
  if (!cond)
    failures++;
  console.log(`${cond ? 'ok' : 'fail'}\t${clean(desc)}\t${clean(detail)}`);
  return cond;
}

export function note(text) {
  console.log(`note\t${clean(text)}`);
}

/* Exit status 0 when every check passed so far, else 1. */
export const status = () => (failures === 0 ? 0 : 1);

/*
 * Runs main(), and exits with status() when it ends; a failed check
 * instead if it throws or has not ended after minutes.
 */
export function runMain(main, minutes) {
  const guard = setTimeout(() => {
    check(`the browser test finished within ${minutes} minutes`, false);
    process.exit(1);
  }, minutes * 60000);
  main().then(() => {
    clearTimeout(guard);
    process.exit(status());
  }, (err) => {
    check('the browser test ran to its end', false, err.stack || err);
    process.exit(1);
  });
}

/* The environment variable name; exit status 2 without it. */
export function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${path.basename(process.argv[1])}: ${name} is not set`);
    process.exit(2);
  }
  return v;
}

/* --- npm packages ---------------------------------------------------- */

/*
 * The npm package name from PF_NODE_MODULES, else tests/node (npm ci
 * --prefix tests/node), else node's own search from here; null if none.
 */
export function loadModule(name) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const dirs = [process.env.PF_NODE_MODULES,
    path.join(here, '..', 'node', 'node_modules')].filter(Boolean);
  for (const dir of dirs) {
    try {
      return createRequire(path.join(dir, 'x.js'))(name);
    } catch {
      /* try the next place */
    }
  }
  try {
    return createRequire(import.meta.url)(name);
  } catch {
    return null;
  }
}

/* playwright-core, or a "skip" line and exit status 3 without it. */
export function playwrightOrSkip() {
  const pw = loadModule('playwright-core');
  if (pw === null) {
    console.log('skip\tplaywright-core not found');
    process.exit(3);
  }
  return pw;
}

/* --- Waiting --------------------------------------------------------- */

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Polls fn() every 100 ms until it returns something truthy (returned),
 * or ms pass (null). */
export async function waitFor(fn, ms) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v)
      return v;
    if (Date.now() > until)
      return null;
    await sleep(100);
  }
}

/* --- The browser ----------------------------------------------------- */

/*
 * A headless Chromium (the executable chromium); spki: the base64
 * SHA-256 of an HTTPS gateway's public key, the one key it then trusts
 * (no certificate error is ignored for any other), or null.
 */
export function launch(pw, chromium, spki) {
  return pw.chromium.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking',
      '--disable-dev-shm-usage', '--no-first-run', '--disable-gpu',
      ...(spki ? [`--ignore-certificate-errors-spki-list=${spki}`] : [])],
  });
}

/*
 * Collects what a page logs as an error into problems; allowed: patterns
 * expected there. Returns a function that stops collecting (for when the
 * page leaves the dashboard).
 */
export function watchErrors(page, label, problems, allowed = []) {
  let on = true;
  const add = (text) => {
    if (on)
      problems.push(`${label}: ${text}`);
  };
  page.on('console', (m) => {
    if (m.type() === 'error' && !allowed.some((re) => re.test(m.text())))
      add(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => add(`page error: ${e}`));
  page.on('dialog', (d) => {
    add(`a ${d.type()} dialog: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  return () => { on = false; };
}

/* The dashboard's sign-in form, sent; remember: "keep me signed in". */
export async function signIn(page, user, password, remember = false) {
  await page.fill('#signin-user', user);
  await page.fill('#signin-password', password);
  if (remember)
    await page.check('#signin-remember');
  await page.click('#signin-submit');
}

/* Clicks selector and saves the download it starts to the file to;
 * returns the name the page suggested. */
export async function saveDownload(page, selector, to) {
  const [dl] = await Promise.all([
    page.waitForEvent('download', { timeout: 60000 }),
    page.click(selector),
  ]);
  await dl.saveAs(to);
  return dl.suggestedFilename();
}
