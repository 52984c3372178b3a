// SPDX-License-Identifier: MIT
// Numbers and times as an operator reads them: binary units, short ages.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function formatBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0)
    return '–';
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  const digits = i === 0 || n >= 100 ? 0 : n >= 10 ? 1 : 2;
  return `${n.toFixed(digits)} ${UNITS[i]}`;
}

export function formatRate(bps) {
  return typeof bps === 'number' ? `${formatBytes(bps)}/s` : '–';
}

export function formatCount(n) {
  return Number.isFinite(n) ? n.toLocaleString('en-US') : '–';
}

/* 42 s, 3 min 5 s, 2 h 10 min, 4 d 3 h: two units are enough to tell
 * a stalled upload from a fresh one. */
export function formatDuration(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds))
    return '–';
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60)
    return `${s} s`;
  if (s < 3600)
    return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400)
    return `${Math.floor(s / 3600)} h ${Math.floor(s % 3600 / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor(s % 86400 / 3600)} h`;
}

/* Age of an ISO timestamp at time now (ms); '–' if it does not parse. */
export function formatAge(iso, now = Date.now()) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '–' : formatDuration((now - t) / 1000);
}

export function formatTime(iso) {
  if (iso === null || iso === undefined)
    return '–';
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? String(iso) : t.toLocaleString();
}

/*
 * Progress of a session in percent. A complete session is 100 % whatever
 * its counters say, and an empty file has no chunks to count.
 */
export function progressPercent(s) {
  if (s.state === 'complete')
    return 100;
  if (!(s.chunks_total > 0))
    return 0;
  return Math.min(100, 100 * s.chunks_acked / s.chunks_total);
}

export function formatPercent(p) {
  return p >= 100 ? '100 %' : `${p.toFixed(p < 10 ? 1 : 0)} %`;
}
