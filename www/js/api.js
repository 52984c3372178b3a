// SPDX-License-Identifier: MIT
// The gateway's REST API (docs/api.md) over fetch(), with the user's HTTP
// Basic credentials. They live in this module's memory, and in
// sessionStorage only when the user asked to stay signed in in this tab.

const STORE_KEY = 'paraflow.auth';

let auth = null; /* {user, header} while signed in */

/* An answer other than 2xx, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }

  get unauthorized() { return this.status === 401; }
  get unreachable() { return this.status === 0; }
}

/* The Authorization value; user and password as UTF-8, as the server's
 * charset="UTF-8" challenge asks. */
function basicHeader(user, password) {
  let bin = '';
  for (const b of new TextEncoder().encode(`${user}:${password}`))
    bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}

export function signIn(user, password, remember) {
  auth = { user, header: basicHeader(user, password) };
  sessionStorage.removeItem(STORE_KEY);
  if (remember)
    sessionStorage.setItem(STORE_KEY, JSON.stringify(auth));
}

export function signOut() {
  auth = null;
  sessionStorage.removeItem(STORE_KEY);
}

/* Takes up credentials kept by an earlier load of this tab; true if any. */
export function restore() {
  try {
    const kept = JSON.parse(sessionStorage.getItem(STORE_KEY));
    if (kept && typeof kept.user === 'string' &&
        typeof kept.header === 'string')
      auth = kept;
  } catch {
    sessionStorage.removeItem(STORE_KEY);
  }
  return auth !== null;
}

/* The Authorization value while signed in (upload.js sends it). */
export function authHeader() {
  return auth === null ? '' : auth.header;
}

export function currentUser() {
  return auth === null ? null : auth.user;
}

/*
 * fetch() with the credentials; resolves to the Response if it is 2xx,
 * else rejects with an ApiError carrying the error object's code.
 *
 * credentials: 'omit' keeps the browser's own HTTP authentication out of
 * it: it neither adds cached credentials nor, on a 401, asks the user in
 * its own dialog; the Authorization header set here is still sent.
 */
export async function request(path, { method = 'GET', signal,
  accept = 'application/json' } = {}) {
  if (auth === null)
    throw new ApiError(401, 'unauthorized', 'not signed in');
  let res;
  try {
    res = await fetch(path, {
      method, signal, credentials: 'omit', cache: 'no-store',
      headers: { Authorization: auth.header, Accept: accept },
    });
  } catch (err) {
    if (err.name === 'AbortError')
      throw err;
    throw new ApiError(0, 'unreachable', 'the server does not answer');
  }
  if (res.ok)
    return res;
  let code = 'http_' + res.status;
  let message = `${res.status} ${res.statusText}`.trim();
  try {
    const body = await res.json();
    if (body && body.error) {
      code = String(body.error.code);
      message = String(body.error.message);
    }
  } catch {
    /* Not the gateway's JSON error (a proxy's page): keep the status. */
  }
  throw new ApiError(res.status, code, message);
}

export async function getJSON(path, options) {
  const res = await request(path, options);
  return res.json();
}

export function sessionPath(id, rest = '') {
  return `/api/v1/sessions/${encodeURIComponent(id)}${rest}`;
}
