// SPDX-License-Identifier: MIT
// The server's totals from /api/v1/stats, as a list of labelled figures.

import { el, setText } from './dom.js';
import { formatBytes, formatCount, formatDuration, formatRate } from
  './format.js';

/* [label, function of the stats object giving the figure's text] */
const FIGURES = [
  ['Receiving', (s) => formatCount(s.sessions.receiving +
    s.sessions.assembling)],
  ['Complete', (s) => formatCount(s.sessions.complete)],
  ['Failed', (s) => formatCount(s.sessions.failed)],
  ['Cancelled', (s) => formatCount(s.sessions.cancelled)],
  ['Expired', (s) => formatCount(s.sessions.expired)],
  ['Throughput', (s) => formatRate(s.rate_bps)],
  ['Received', (s) => formatBytes(s.bytes_received)],
  ['Chunks acked', (s) => formatCount(s.chunks_acked)],
  ['Chunks failed check', (s) => formatCount(s.chunks_nacked)],
  ['Chunks re-sent', (s) => formatCount(s.chunks_resent)],
  ['Connections', (s) => formatCount(s.connections_open)],
  ['Logging in', (s) => formatCount(s.connections_authenticating)],
  ['Auth failures', (s) => formatCount(s.auth_failures)],
  ['Uptime', (s) => formatDuration(s.uptime_s)],
];

export class Totals {
  constructor(dl) {
    this.values = FIGURES.map(([label]) => {
      const dd = el('dd', {}, '–');
      dl.append(el('div', { 'data-figure': label }, el('dt', {}, label), dd));
      return dd;
    });
  }

  update(stats) {
    FIGURES.forEach(([, value], i) => {
      let text;
      try {
        text = value(stats);
      } catch {
        text = '–'; /* a field missing from an older server */
      }
      setText(this.values[i], text);
    });
  }
}
