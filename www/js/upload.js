// SPDX-License-Identifier: MIT
// Uploads from the browser: tus 1.0.0 against the gateway's
// /api/v1/uploads (docs/api.md), resumable across a reload of the page.
//
// A small module of the dashboard's own rather than tus-js-client: the
// page has no build step and no bundle, and needs only POST, HEAD and
// PATCH; tus-js-client itself is what t_tus.sh tests the server with.
// PATCH goes through XMLHttpRequest, whose upload events give the
// progress fetch() does not.
//
// Each upload's URL is kept in localStorage under the user, name, size
// and modification time of its file until it completes: the same file
// dropped again after a reload goes on from the offset the server holds
// (HEAD), which is durable there.

import { ApiError, authHeader } from './api.js';

const ENDPOINT = '/api/v1/uploads';
/*
 * Bytes per PATCH: a multiple of the server's 4 MiB chunk, so each one
 * ends on a durable offset and nothing is sent twice.
 */
const SLICE = 16 * 1024 * 1024;
const KEY = 'paraflow.upload.';
/*
 * Waits before trying again after an answer that may pass: 423 (the
 * request a reload cut off still holds the upload on the server for a
 * moment), no answer, or a 5xx other than 507 (storage full).
 */
const RETRY_MS = [500, 1000, 2000, 3000, 5000, 5000, 10000, 10000];

function passing(err) {
  return err instanceof ApiError && (err.status === 423 ||
    err.status === 0 || (err.status >= 500 && err.status !== 507));
}

function keyOf(user, file) {
  return KEY + JSON.stringify([user, file.name, file.size,
    file.lastModified]);
}

/* The uploads this browser left unfinished: [{name, size, url}]. */
export function unfinished(user) {
  const out = [];
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    try {
      const [u, name, size] = JSON.parse(k.slice(KEY.length));
      if (k.startsWith(KEY) && u === user)
        out.push({ name, size, url: localStorage.getItem(k) });
    } catch {
      /* not ours */
    }
  }
  return out;
}

/* The gateway's error of a tus answer, as api.js's ApiError. */
function errorOf(status, text) {
  let code = `http_${status}`;
  let message = `HTTP ${status}`;
  try {
    const e = JSON.parse(text).error;
    code = String(e.code);
    message = String(e.message);
  } catch {
    /* no JSON: keep the status */
  }
  return new ApiError(status, code, message);
}

async function tusFetch(url, method, headers = {}) {
  const res = await fetch(url, {
    method, credentials: 'omit', cache: 'no-store',
    headers: { Authorization: authHeader(), 'Tus-Resumable': '1.0.0',
      ...headers },
  });
  if (!res.ok)
    throw errorOf(res.status, await res.text());
  return res;
}

export class Upload {
  /* onProgress(sent, size), onDone(id), onError(err). */
  constructor(user, file, handlers) {
    this.file = file;
    this.key = keyOf(user, file);
    this.handlers = handlers;
    this.xhr = null;
    this.resumedFrom = null;
  }

  async start() {
    for (let attempt = 0; ; attempt++) {
      try {
        const url = await this.where();
        let offset = this.resumedFrom ?? 0;
        while (offset < this.file.size)
          offset = await this.patch(url, offset);
        localStorage.removeItem(this.key);
        this.handlers.onProgress(this.file.size, this.file.size);
        this.handlers.onDone(url.slice(url.lastIndexOf('/') + 1));
        return;
      } catch (err) {
        if (!passing(err) || attempt === RETRY_MS.length) {
          this.handlers.onError(err);
          return;
        }
        await new Promise((r) => setTimeout(r, RETRY_MS[attempt]));
      }
    }
  }

  /* The upload's URL: the one kept for this file if the server still
   * has it (its offset in resumedFrom), else a new one. */
  async where() {
    const kept = localStorage.getItem(this.key);
    if (kept !== null) {
      try {
        const res = await tusFetch(kept, 'HEAD');
        this.resumedFrom = Number(res.headers.get('Upload-Offset'));
        return kept;
      } catch (err) {
        if (!(err instanceof ApiError) || err.status >= 500)
          throw err;
        localStorage.removeItem(this.key);
      }
    }
    const name = new TextEncoder().encode(this.file.name);
    const res = await tusFetch(ENDPOINT, 'POST', {
      'Upload-Length': String(this.file.size),
      'Upload-Metadata': 'filename ' +
        btoa(String.fromCharCode(...name)),
    });
    const url = res.headers.get('Location');
    localStorage.setItem(this.key, url);
    return url;
  }

  /* One PATCH from offset; resolves to the server's new offset. */
  patch(url, offset) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open('PATCH', url);
      xhr.setRequestHeader('Authorization', authHeader());
      xhr.setRequestHeader('Tus-Resumable', '1.0.0');
      xhr.setRequestHeader('Upload-Offset', String(offset));
      xhr.setRequestHeader('Content-Type',
        'application/offset+octet-stream');
      xhr.upload.onprogress = (e) =>
        this.handlers.onProgress(offset + e.loaded, this.file.size);
      xhr.onload = () => {
        /* 409: another tab moved it on; go on from where it is. */
        if (xhr.status === 204 || xhr.status === 409)
          resolve(Number(xhr.getResponseHeader('Upload-Offset')));
        else
          reject(errorOf(xhr.status, xhr.responseText));
      };
      xhr.onerror = () => reject(new ApiError(0, 'unreachable',
        'the server does not answer'));
      xhr.send(this.file.slice(offset, Math.min(offset + SLICE,
        this.file.size)));
    });
  }
}
