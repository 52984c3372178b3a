// SPDX-License-Identifier: MIT
// The upload panel: files dropped on it or chosen with the picker, each
// sent by upload.js with its own progress bar and state; the uploads a
// reload cut short are listed, to be dropped again.

import { el, setText } from './dom.js';
import { formatBytes } from './format.js';
import { Upload, unfinished } from './upload.js';

export class Uploader {
  /* drop: the drop zone; pick: its file input; list: the <ul>. */
  constructor(drop, pick, list) {
    this.list = list;
    this.user = null;
    drop.addEventListener('dragover', (e) => {
      e.preventDefault();
      drop.classList.add('over');
    });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      this.send([...e.dataTransfer.files]);
    });
    pick.addEventListener('change', () => {
      this.send([...pick.files]);
      pick.value = '';
    });
  }

  /* Signed in as user: the uploads cut short show again. */
  start(user) {
    this.user = user;
    this.list.replaceChildren();
    for (const u of unfinished(user))
      this.list.append(el('li', { class: 'upload', 'data-state':
        'interrupted' }, el('span', { class: 'name' }, u.name),
      el('span', { class: 'state' }, `interrupted (${formatBytes(u.size)})` +
        ': drop or choose it again to resume')));
  }

  send(files) {
    for (const file of files)
      this.one(file);
  }

  one(file) {
    for (const li of this.list.querySelectorAll('li[data-state=' +
      'interrupted]'))
      if (li.querySelector('.name').textContent === file.name)
        li.remove();
    const bar = el('progress', { max: 1, value: 0,
      'aria-label': `Upload of ${file.name}` });
    const state = el('span', { class: 'state' }, 'starting');
    const li = el('li', { class: 'upload', 'data-state': 'sending' },
      el('span', { class: 'name' }, file.name), bar, state);
    this.list.prepend(li);
    const up = new Upload(this.user, file, {
      onProgress(sent, size) {
        bar.value = size === 0 ? 1 : sent / size;
        setText(state, `${formatBytes(sent)} of ${formatBytes(size)}` +
          (up.resumedFrom ? ` (resumed at ${formatBytes(up.resumedFrom)})`
            : ''));
      },
      onDone(id) {
        li.dataset.state = 'complete';
        li.dataset.session = id;
        if (up.resumedFrom !== null)
          li.dataset.resumedFrom = String(up.resumedFrom);
        setText(state, `complete: ${formatBytes(file.size)}` +
          (up.resumedFrom ? `, resumed at ${formatBytes(up.resumedFrom)}`
            : ''));
      },
      onError(err) {
        li.dataset.state = 'failed';
        setText(state, `failed: ${err.message}`);
      },
    });
    up.start();
  }
}
