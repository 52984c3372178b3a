// SPDX-License-Identifier: MIT
// One session in a dialog: its fields, its chunk map (read again every
// second while it runs), a download of the finished file, and cancel or
// delete behind a confirm step.

import { ApiError, getJSON, request, sessionPath } from './api.js';
import { ChunkMap } from './chunkmap.js';
import { byId, el, setText } from './dom.js';
import { TransferFiles } from './files.js';
import { formatBytes, formatCount, formatPercent, formatRate, formatTime,
  progressPercent } from './format.js';

const CHUNKS_EVERY_MS = 1000;
const RUNNING = new Set(['authenticating', 'receiving', 'assembling']);
const FINISHED = new Set(['complete', 'failed', 'cancelled', 'expired']);

/* [label, function of the session giving the text] */
const FIELDS = [
  ['Session', (s) => s.id],
  ['User', (s) => s.user],
  ['Client', (s) => s.client_addr ?? '–'],
  ['Size', (s) => `${formatBytes(s.size)} (${formatCount(s.size)} bytes)`],
  ['Chunks', (s) => `${formatCount(s.chunks_acked)} of ` +
    `${formatCount(s.chunks_total)}, ${formatBytes(s.chunk_size)} each`],
  ['Failed checks', (s) => formatCount(s.chunks_nacked)],
  ['Re-sent', (s) => formatCount(s.chunks_resent)],
  ['Rate', (s) => formatRate(s.rate_bps)],
  ['Streams', (s) => formatCount(s.streams)],
  ['Received', (s) => formatBytes(s.bytes_received)],
  ['Started', (s) => formatTime(s.created_at)],
  ['Last change', (s) => formatTime(s.updated_at)],
  ['Finished', (s) => formatTime(s.finished_at)],
  ['Receipt', (s) => s.digest ?? '–'],
  ['Error', (s) => (s.error === null || s.error === undefined ? '–'
    : `${s.error}${s.error_message ? `: ${s.error_message}` : ''}`)],
];

export class SessionDetail {
  /*
   * onChanged() after a cancel or delete went through, so that the caller
   * can read the list again when no event stream tells it.
   * onUnauthorized() on a 401.
   */
  constructor({ onChanged, onUnauthorized }) {
    this.onChanged = onChanged;
    this.onUnauthorized = onUnauthorized;
    this.dialog = byId('detail');
    this.session = null;
    this.returnFocus = null;
    this.timer = null;
    this.chunksBusy = false;
    this.chunksDoneFor = null; /* a finished session's map is read once */
    this.pendingAction = null;
    this.downloading = false;
    this.chunkMap = new ChunkMap(byId('chunkmap'), byId('chunk-legend'));
    this.files = new TransferFiles((err, what) => this.failed(err, what));
    this.fieldValues = FIELDS.map(([label]) => {
      const dd = el('dd', { 'data-field': label });
      byId('detail-fields').append(el('dt', {}, label), dd);
      return dd;
    });

    byId('detail-close').addEventListener('click', () => this.close());
    this.dialog.addEventListener('close', () => this.closed());
    byId('detail-download').addEventListener('click', (ev) => {
      ev.preventDefault();
      this.download();
    });
    byId('detail-cancel').addEventListener('click', () => this.confirm(
      'cancel', 'Cancel this upload? The client gets a "cancelled" error ' +
      'and the chunks received so far are thrown away.',
      'Yes, cancel the upload'));
    byId('detail-delete').addEventListener('click', () => this.confirm(
      'delete', 'Delete this session? Its file, if any, is removed from ' +
      'the server for good.', 'Yes, delete it'));
    byId('detail-confirm-no').addEventListener('click', () =>
      this.unconfirm(true));
    byId('detail-confirm-yes').addEventListener('click', () => this.act());
  }

  get openId() {
    return this.dialog.open && this.session !== null ? this.session.id : null;
  }

  open(session, returnFocus) {
    this.session = session;
    this.returnFocus = returnFocus;
    this.chunksDoneFor = null;
    this.chunkMap.update('');
    setText(byId('detail-status'), '');
    this.unconfirm(false);
    this.render();
    if (!this.dialog.open)
      this.dialog.showModal();
    this.chunkMap.draw(); /* the canvas has a width only once shown */
    this.refreshChunks();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refreshChunks(), CHUNKS_EVERY_MS);
  }

  close() {
    if (this.dialog.open)
      this.dialog.close();
  }

  closed() {
    clearInterval(this.timer);
    this.timer = null;
    const back = this.returnFocus;
    this.session = null;
    this.returnFocus = null;
    if (back !== null && back.isConnected)
      back.focus();
  }

  /* A newer copy of the open session, or null once it is gone. */
  update(session) {
    if (!this.dialog.open)
      return;
    if (session === null) {
      /* Gone (deleted here or elsewhere): its map would only be a 404. */
      clearInterval(this.timer);
      this.timer = null;
      const status = byId('detail-status');
      if (status.textContent === '')
        setText(status, 'This session no longer exists.');
      this.hideActions();
      return;
    }
    this.session = session;
    this.render();
  }

  render() {
    const s = this.session;
    setText(byId('detail-name'), s.name);
    const badge = byId('detail-state');
    setText(badge, s.state);
    badge.className = `state state-${s.state}`;
    setText(byId('detail-progress'), formatPercent(progressPercent(s)));
    FIELDS.forEach(([, value], i) => setText(this.fieldValues[i], value(s)));
    setText(byId('detail-cli'), s.state === 'complete'
      ? `paraflow fetch ${s.id}` : `paraflow status ${s.id} --watch`);

    this.files.show(s);
    const link = byId('detail-download');
    /* A transfer has no one file: its list has the downloads. */
    link.hidden = s.state !== 'complete' || Boolean(s.files);
    link.href = sessionPath(s.id, '/file');
    link.download = s.name;
    byId('detail-cancel').hidden = s.state !== 'receiving';
    byId('detail-delete').hidden = !FINISHED.has(s.state);
    if (this.pendingAction === 'cancel' && s.state !== 'receiving')
      this.unconfirm(false);
  }

  hideActions() {
    for (const id of ['detail-download', 'detail-cancel', 'detail-delete',
      'transfer-tar'])
      byId(id).hidden = true;
    this.unconfirm(false);
  }

  async refreshChunks() {
    const s = this.session;
    if (s === null || this.chunksBusy || this.chunksDoneFor === s.id)
      return;
    this.chunksBusy = true;
    try {
      const chunks = await getJSON(sessionPath(s.id, '/chunks'));
      if (this.session !== null && this.session.id === chunks.id) {
        this.chunkMap.update(chunks.map);
        if (!RUNNING.has(this.session.state))
          this.chunksDoneFor = chunks.id;
      }
    } catch (err) {
      this.failed(err, 'Cannot read the chunk map');
    } finally {
      this.chunksBusy = false;
    }
  }

  confirm(action, question, yes) {
    this.pendingAction = action;
    setText(byId('detail-confirm-text'), question);
    setText(byId('detail-confirm-yes'), yes);
    byId('detail-confirm').hidden = false;
    /* The safe answer has the focus: Enter twice must not destroy data. */
    byId('detail-confirm-no').focus();
  }

  unconfirm(refocus) {
    const was = this.pendingAction;
    this.pendingAction = null;
    byId('detail-confirm').hidden = true;
    if (refocus && was !== null)
      byId(was === 'cancel' ? 'detail-cancel' : 'detail-delete').focus();
  }

  async act() {
    const s = this.session;
    const action = this.pendingAction;
    if (s === null || action === null)
      return;
    const yes = byId('detail-confirm-yes');
    yes.disabled = true;
    try {
      const res = await request(sessionPath(s.id), { method: 'DELETE' });
      const body = await res.json();
      setText(byId('detail-status'), body.action === 'deleted'
        ? 'Deleted.' : 'Cancelled: the client is told at its next chunk.');
      this.unconfirm(false);
      byId('detail-close').focus();
      this.chunksDoneFor = null;
      this.onChanged();
    } catch (err) {
      this.failed(err, action === 'cancel' ? 'Cannot cancel'
        : 'Cannot delete');
    } finally {
      yes.disabled = false;
    }
  }

  /*
   * Asks the gateway for a short-lived link that needs no login (a plain
   * link cannot carry the credentials) and lets the browser download it
   * straight to disk, however large the file.
   */
  async download() {
    const s = this.session;
    if (s === null || s.state !== 'complete' || s.files ||
        this.downloading)
      return;
    this.downloading = true;
    const status = byId('detail-status');
    const link = byId('detail-download');
    link.setAttribute('aria-disabled', 'true');
    try {
      const res = await request(sessionPath(s.id, '/link'),
        { method: 'POST' });
      const { url } = await res.json();
      const a = el('a', { href: url, download: s.name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setText(status, `Downloading ${formatBytes(s.size)}…`);
    } catch (err) {
      this.failed(err, 'Cannot download');
    } finally {
      link.removeAttribute('aria-disabled');
      this.downloading = false;
    }
  }

  failed(err, what) {
    if (err instanceof ApiError && err.unauthorized) {
      this.close();
      this.onUnauthorized();
      return;
    }
    const why = err instanceof ApiError
      ? (err.status === 409 ? 'the file is being stored; try again in a moment'
        : err.message) : String(err.message || err);
    setText(byId('detail-status'), `${what}: ${why}.`);
  }
}
