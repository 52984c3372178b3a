// SPDX-License-Identifier: MIT
// The throughput chart: the last minutes of stats.throughput.bps (one
// sample a second) drawn on a canvas, with a text summary beside it for
// those who cannot see it.

import { cssVar, setText } from './dom.js';
import { formatRate } from './format.js';

const WINDOW_S = 300;

/* The smallest 1, 2 or 5 times a power of 1024 or 10 above v, so that the
 * axis reads 200 MiB/s rather than 187.3 MiB/s. */
function niceCeiling(v) {
  if (!(v > 0))
    return 1024 * 1024;
  let unit = 1;
  while (v >= unit * 1024)
    unit *= 1024;
  const x = v / unit;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10])
    if (x <= m * p)
      return m * p * unit;
  return 10 * p * unit;
}

export class ThroughputChart {
  constructor(canvas, summary) {
    this.canvas = canvas;
    this.summary = summary;
    this.samples = [];
    this.interval = 1;
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  update(throughput) {
    if (!throughput || !Array.isArray(throughput.bps))
      return;
    this.interval = throughput.interval_s > 0 ? throughput.interval_s : 1;
    const n = Math.ceil(WINDOW_S / this.interval);
    this.samples = throughput.bps.slice(-n);
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    if (w === 0 || h === 0)
      return;
    c.width = Math.round(w * dpr);
    c.height = Math.round(h * dpr);
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);

    const n = Math.ceil(WINDOW_S / this.interval);
    const data = this.samples;
    const peak = data.reduce((m, v) => Math.max(m, v), 0);
    const top = niceCeiling(peak);
    const font = '12px system-ui, sans-serif';
    const muted = cssVar('--muted', '#4b5563');
    const left = 84;
    const bottom = h - 18;
    const plotW = w - left - 4;
    const x = (i) => left + plotW * (i + n - data.length) / (n - 1);
    const y = (v) => 6 + (bottom - 6) * (1 - v / top);

    g.font = font;
    g.fillStyle = muted;
    g.strokeStyle = cssVar('--chart-grid', '#e5e7eb');
    g.lineWidth = 1;
    g.textBaseline = 'middle';
    g.textAlign = 'right';
    for (const f of [0, 0.5, 1]) {
      const yy = Math.round(y(top * f)) + 0.5;
      g.beginPath();
      g.moveTo(left, yy);
      g.lineTo(w, yy);
      g.stroke();
      g.fillText(formatRate(top * f), left - 6, yy);
    }
    g.textBaseline = 'alphabetic';
    g.textAlign = 'left';
    g.fillText(`${Math.round(n * this.interval / 60)} min ago`, left, h - 3);
    g.textAlign = 'right';
    g.fillText('now', w - 2, h - 3);

    if (data.length > 1) {
      g.beginPath();
      data.forEach((v, i) => (i === 0 ? g.moveTo(x(i), y(v))
        : g.lineTo(x(i), y(v))));
      g.strokeStyle = cssVar('--chart-line', '#1d4ed8');
      g.lineWidth = 2;
      g.stroke();
      g.lineTo(x(data.length - 1), y(0));
      g.lineTo(x(0), y(0));
      g.closePath();
      g.fillStyle = cssVar('--chart-fill', 'rgba(29, 78, 216, 0.18)');
      g.fill();
    }

    const now = data.length > 0 ? data[data.length - 1] : 0;
    const mean = data.length > 0
      ? data.reduce((a, v) => a + v, 0) / data.length : 0;
    const text = `Now ${formatRate(now)} · peak ${formatRate(peak)} · ` +
      `average ${formatRate(mean)}`;
    setText(this.summary, text);
    c.setAttribute('aria-label', `Throughput over the last 5 minutes. ${text}`);
  }
}
