// SPDX-License-Identifier: MIT
// The file list of a transfer (a session with `files`) in the detail
// dialog: each entry's path, size, state and receipt, a download of each
// stored file and one of the whole tree as a tar. The list is read once,
// when the transfer is complete: the gateway has none before (409).

import { request, getJSON, sessionPath } from './api.js';
import { byId, el, setText } from './dom.js';
import { formatBytes } from './format.js';

export class TransferFiles {
  /* onError(err, what) when a request fails. */
  constructor(onError) {
    this.onError = onError;
    this.section = byId('transfer');
    this.body = byId('transfer-files');
    this.note = byId('transfer-note');
    this.tar = byId('transfer-tar');
    this.session = null;
    this.loadedFor = null;
    this.busy = false;
    this.body.addEventListener('click', (ev) => {
      const a = ev.target.closest('a[data-path]');
      if (a !== null) {
        ev.preventDefault();
        this.download(a.dataset.path);
      }
    });
    this.tar.addEventListener('click', (ev) => {
      ev.preventDefault();
      this.download(null);
    });
  }

  /* Shows session s (hides the section if it is no transfer). */
  show(s) {
    const changed = this.session === null || this.session.id !== s.id;
    this.session = s;
    this.section.hidden = !s.files;
    if (changed) {
      this.loadedFor = null;
      this.body.replaceChildren();
    }
    if (!s.files)
      return;
    const complete = s.state === 'complete';
    this.tar.hidden = !complete;
    this.tar.href = sessionPath(s.id, '/tar');
    this.tar.download = `${s.name}.tar`;
    if (!complete) {
      setText(this.note, `${s.files} files; the list comes once the ` +
        'transfer is complete.');
      return;
    }
    if (this.loadedFor !== s.id && !this.busy)
      this.load(s.id);
  }

  async load(id) {
    this.busy = true;
    try {
      const body = await getJSON(sessionPath(id, '/files'));
      if (this.session !== null && this.session.id === id) {
        this.loadedFor = id;
        this.fill(id, body.files);
      }
    } catch (err) {
      this.onError(err, 'Cannot read the file list');
    } finally {
      this.busy = false;
    }
  }

  fill(id, files) {
    const stored = files.filter((f) => f.state === 'stored' && !f.dir);
    setText(this.note, `${files.length} entries, ${stored.length} files ` +
      'stored.');
    this.body.replaceChildren(...files.map((f) => {
      const p = f.path ?? f.client ?? '';
      const link = f.state === 'stored' && !f.dir
        ? el('a', { href: sessionPath(id, `/file?path=${
          encodeURIComponent(p)}`), 'data-path': p,
        download: p.split('/').pop(), class: 'file-download' }, 'Download')
        : null;
      return el('tr', { 'data-path': p },
        el('td', { 'data-col': 'path', class: 'col-path' }, p),
        el('td', { 'data-col': 'size', class: 'num' },
          f.dir ? 'folder' : formatBytes(f.size)),
        el('td', { 'data-col': 'state', title: f.reason ?? null },
          el('span', { class: `state state-${f.state === 'stored'
            ? 'complete' : 'failed'}` }, f.state)),
        el('td', { 'data-col': 'receipt', class: 'col-receipt' },
          f.digest ?? '–'),
        el('td', {}, link));
    }));
  }

  /*
   * Downloads file path (null: the tar) through a short-lived link, as
   * the detail view does for one file: a plain link cannot carry the
   * credentials. The link's token opens every file of the transfer.
   */
  async download(path) {
    const s = this.session;
    if (s === null || s.state !== 'complete')
      return;
    try {
      const res = await request(sessionPath(s.id, '/link'),
        { method: 'POST' });
      const { url } = await res.json();
      const token = new URL(url, location.href).searchParams.get('token');
      const q = `?token=${encodeURIComponent(token)}`;
      const href = path === null ? sessionPath(s.id, `/tar${q}`)
        : sessionPath(s.id, `/file${q}&path=${encodeURIComponent(path)}`);
      const a = el('a', { href, hidden: true, download: path === null
        ? `${s.name}.tar` : path.split('/').pop() });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (err) {
      this.onError(err, 'Cannot download');
    }
  }
}
