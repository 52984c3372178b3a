// SPDX-License-Identifier: MIT
// A session's chunk map (GET /api/v1/sessions/{id}/chunks, one character
// per chunk) drawn as a grid on a canvas: a file of 64 KiB chunks has
// thousands, too many for one element each. The legend counts each kind
// in text, which is also what a screen reader gets.

import { cssVar, el, setText } from './dom.js';

/* The map's characters (docs/api.md), in legend order. */
const KINDS = [
  { ch: 'd', label: 'received', color: '--chunk-received', swatch: 'd' },
  { ch: 's', label: 're-sent', color: '--chunk-resent', swatch: 's' },
  { ch: 'r', label: 'being received', color: '--chunk-receiving',
    swatch: 'r' },
  { ch: 'x', label: 'retry', color: '--chunk-retry', swatch: 'x' },
  { ch: '.', label: 'pending', color: '--chunk-pending', swatch: 'p' },
];
const MAX_HEIGHT = 260;

export class ChunkMap {
  constructor(canvas, legend) {
    this.canvas = canvas;
    this.map = '';
    this.counts = new Map();
    for (const k of KINDS) {
      const count = el('span', { 'data-kind': k.label }, '0');
      legend.append(el('li', {},
        el('span', { class: `swatch swatch-${k.swatch}`, 'aria-hidden': 'true' }),
        `${k.label}: `, count));
      this.counts.set(k.ch, count);
    }
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  update(map) {
    this.map = typeof map === 'string' ? map : '';
    this.draw();
  }

  draw() {
    const n = this.map.length;
    const tally = new Map(KINDS.map((k) => [k.ch, 0]));
    for (const ch of this.map)
      tally.set(ch, (tally.get(ch) ?? 0) + 1);
    for (const k of KINDS)
      setText(this.counts.get(k.ch), tally.get(k.ch).toLocaleString('en-US'));
    const summary = KINDS.filter((k) => tally.get(k.ch) > 0)
      .map((k) => `${tally.get(k.ch)} ${k.label}`).join(', ');
    this.canvas.setAttribute('aria-label',
      `Chunk map of ${n} chunks${summary ? `: ${summary}` : ''}`);

    const w = this.canvas.clientWidth;
    if (w === 0)
      return;
    /* The largest cell, 2 to 16 px, that keeps the grid under MAX_HEIGHT. */
    let cell = 16;
    while (cell > 2 && Math.ceil(n / Math.floor(w / cell)) * cell > MAX_HEIGHT)
      cell--;
    const cols = Math.max(1, Math.floor(w / cell));
    const h = Math.max(cell, Math.ceil(n / cols) * cell);
    const dpr = window.devicePixelRatio || 1;
    this.canvas.style.height = `${h}px`;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    const g = this.canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const colors = new Map(KINDS.map((k) => [k.ch, cssVar(k.color, '#888')]));
    const gap = cell >= 6 ? 1 : 0;
    for (let i = 0; i < n; i++) {
      g.fillStyle = colors.get(this.map[i]) ?? colors.get('.');
      g.fillRect((i % cols) * cell, Math.floor(i / cols) * cell,
        cell - gap, cell - gap);
    }
  }
}
