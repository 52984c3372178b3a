// SPDX-License-Identifier: MIT
// The sessions table: one row per session, updated in place so that a
// focused row keeps its focus while the numbers change under it.

import { el, setText } from './dom.js';
import { formatAge, formatBytes, formatCount, formatPercent, formatRate,
  progressPercent } from './format.js';

const COLUMNS = ['Name', 'User', 'Size', 'Progress', 'Rate', 'Streams',
  'Retries', 'State', 'Age'];

export class SessionTable {
  /* onOpen(session, row) when a row is chosen (click, Enter or Space). */
  constructor(tbody, emptyNote, table, onOpen) {
    this.tbody = tbody;
    this.emptyNote = emptyNote;
    this.table = table;
    this.onOpen = onOpen;
    this.rows = new Map(); /* id -> {tr, cells, session} */
  }

  /* sessions: newest first, as they are to be shown. */
  render(sessions) {
    const seen = new Set();
    sessions.forEach((s, i) => {
      seen.add(s.id);
      let row = this.rows.get(s.id);
      if (row === undefined) {
        row = this.makeRow(s.id);
        this.rows.set(s.id, row);
      }
      row.session = s;
      this.fill(row, s);
      /* Moved only if out of place: moving a node drops its focus. */
      const at = this.tbody.children[i];
      if (at !== row.tr)
        this.tbody.insertBefore(row.tr, at === undefined ? null : at);
    });
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        this.rows.delete(id);
      }
    }
    this.emptyNote.hidden = sessions.length > 0;
    this.table.hidden = sessions.length === 0;
  }

  makeRow(id) {
    const cells = {};
    const tr = el('tr', { tabindex: 0, 'data-id': id });
    for (const label of COLUMNS) {
      const key = label.toLowerCase();
      const numeric = ['size', 'rate', 'streams', 'retries', 'age']
        .includes(key);
      cells[key] = el('td', { 'data-label': label, 'data-col': key,
        class: numeric ? 'num' : `col-${key}` });
      tr.append(cells[key]);
    }
    cells.bar = el('progress', { max: 100, value: 0 });
    cells.pct = el('span', { class: 'pct' });
    cells.progress.append(cells.bar, cells.pct);
    cells.badge = el('span', { class: 'state' });
    cells.state.append(cells.badge);
    const row = { tr, cells, session: null };
    tr.addEventListener('click', () => this.onOpen(row.session, tr));
    tr.addEventListener('keydown', (ev) => {
      if ((ev.key === 'Enter' || ev.key === ' ') && ev.target === tr) {
        ev.preventDefault();
        this.onOpen(row.session, tr);
      }
    });
    return row;
  }

  fill(row, s) {
    const c = row.cells;
    const pct = progressPercent(s);
    setText(c.name, s.name);
    c.name.title = s.name;
    setText(c.user, s.user);
    /* A transfer (docs/api.md: `files`) opens to its file list. */
    row.tr.classList.toggle('transfer', Boolean(s.files));
    setText(c.size, s.files ? `${formatBytes(s.size)}, ` +
      `${formatCount(s.files)} files` : formatBytes(s.size));
    c.bar.value = pct;
    c.bar.setAttribute('aria-label', `${formatPercent(pct)} of ${s.name}`);
    setText(c.pct, formatPercent(pct));
    setText(c.rate, s.rate_bps > 0 ? formatRate(s.rate_bps) : '–');
    setText(c.streams, formatCount(s.streams));
    setText(c.retries, formatCount(s.chunks_resent));
    setText(c.badge, s.state);
    c.badge.className = `state state-${s.state}`;
    setText(c.age, formatAge(s.created_at));
  }

  /* Called every second: ages move even when nothing else does. */
  tickAges(now = Date.now()) {
    for (const row of this.rows.values())
      setText(row.cells.age, formatAge(row.session.created_at, now));
  }

  rowOf(id) {
    const row = this.rows.get(id);
    return row === undefined ? null : row.tr;
  }
}
