// SPDX-License-Identifier: MIT
// The dashboard's wiring: sign-in and sign-out, the feed into one map of
// sessions, and the views drawn from it.

import * as api from './api.js';
import { ThroughputChart } from './chart.js';
import { SessionDetail } from './detail.js';
import { byId, setText } from './dom.js';
import { LiveFeed } from './live.js';
import { SessionTable } from './sessions.js';
import { Totals } from './totals.js';
import { Uploader } from './uploader.js';

const MODE_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  polling: 'Polling every 2 s (the event stream is unavailable)',
  unreachable: 'Server unreachable, retrying every 2 s',
};

const sessions = new Map(); /* id -> session, as last heard */
let listTotal = 0;
let renderQueued = false;
let lastHeard = Date.now(); /* when the server last told us something */

const table = new SessionTable(byId('sessions-body'), byId('sessions-empty'),
  byId('sessions'), (s, row) => detail.open(s, row));
const totals = new Totals(byId('totals'));
const uploader = new Uploader(byId('drop'), byId('upload-pick'),
  byId('upload-list'));
const chart = new ThroughputChart(byId('chart'), byId('chart-summary'));
const detail = new SessionDetail({
  onChanged: () => feed.refresh().catch(() => {}),
  onUnauthorized: () => rejected(),
});
const feed = new LiveFeed({
  onList(list, total) {
    const fresh = new Map(list.map((s) => [s.id, s]));
    sessions.clear();
    for (const [id, s] of fresh)
      sessions.set(id, s);
    listTotal = total;
    queueRender();
  },
  onSession(type, s) {
    if (type === 'deleted')
      sessions.delete(s.id);
    else if (isNewer(s, sessions.get(s.id)))
      sessions.set(s.id, s);
    queueRender();
  },
  onStats(stats) {
    lastHeard = Date.now();
    totals.update(stats);
    chart.update(stats.throughput);
    if (typeof stats.version === 'string')
      setText(byId('version'), `paraflowd ${stats.version}`);
  },
  onMode(mode) {
    showConn(mode, MODE_TEXT[mode]);
    if (mode === 'unreachable')
      setText(byId('notice'), 'The server does not answer: what is shown ' +
        `is as of ${new Date(lastHeard).toLocaleTimeString()}.`);
    else
      setText(byId('notice'), '');
  },
  onUnauthorized: () => rejected(),
});

/* An event read before the list may be older than the list's copy. */
function isNewer(s, old) {
  return old === undefined || !(Date.parse(old.updated_at) >
    Date.parse(s.updated_at));
}

function showConn(state, text) {
  const conn = byId('conn');
  conn.dataset.state = state;
  setText(conn, text);
}

/* Renders at most once a frame, however many events came in it. */
function queueRender() {
  if (renderQueued)
    return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const list = [...sessions.values()].sort((a, b) =>
      Date.parse(b.created_at) - Date.parse(a.created_at) ||
      (a.id < b.id ? -1 : 1));
    table.render(list);
    const more = byId('sessions-more');
    more.hidden = listTotal <= list.length;
    setText(more, `Showing the newest ${list.length} of ${listTotal} ` +
      'sessions.');
    if (detail.openId !== null)
      detail.update(sessions.get(detail.openId) ?? null);
  });
}

function showDashboard() {
  byId('signin').hidden = true;
  byId('dash').hidden = false;
  byId('account').hidden = false;
  setText(byId('account-user'), api.currentUser());
  uploader.start(api.currentUser());
  feed.start();
}

function showSignIn(message) {
  feed.stop();
  detail.close();
  sessions.clear();
  queueRender();
  byId('dash').hidden = true;
  byId('account').hidden = true;
  byId('signin').hidden = false;
  setText(byId('signin-state'), message);
  showConn('signed-out', 'Not signed in');
  byId('signin-user').focus();
}

/* The server turned the credentials down while in use. */
function rejected() {
  api.signOut();
  showSignIn('Not signed in: the server no longer accepts your user or ' +
    'password. Sign in again.');
}

async function submitSignIn(ev) {
  ev.preventDefault();
  const user = byId('signin-user').value.trim();
  const password = byId('signin-password').value;
  const error = byId('signin-error');
  const button = byId('signin-submit');
  if (user === '' || password === '') {
    setText(error, 'Enter a user and a password.');
    return;
  }
  setText(error, '');
  button.disabled = true;
  api.signIn(user, password, byId('signin-remember').checked);
  try {
    await api.getJSON('/api/v1/stats');
    byId('signin-password').value = '';
    setText(byId('notice'), '');
    showDashboard();
    byId('sessions-heading').focus();
  } catch (err) {
    api.signOut();
    setText(error, err instanceof api.ApiError && err.unauthorized
      ? 'Wrong user or password.'
      : err instanceof api.ApiError && err.unreachable
        ? 'The server does not answer. Try again in a moment.'
        : `Cannot sign in: ${err.message}`);
    byId('signin-password').select();
  } finally {
    button.disabled = false;
  }
}

byId('signin-form').addEventListener('submit', submitSignIn);
byId('sign-out').addEventListener('click', () => {
  api.signOut();
  showSignIn('You have signed out.');
  setText(byId('notice'), 'Signed out.');
});
setInterval(() => table.tickAges(), 1000);

if (api.restore())
  showDashboard();
else
  showSignIn('You are not signed in.');
