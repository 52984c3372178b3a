// SPDX-License-Identifier: MIT
// The dashboard's feed of sessions and stats: the event stream while it
// works, else the list and the stats polled every 2 s, trying the stream
// again now and then. Either way the caller gets the same calls.

import { ApiError, getJSON, request } from './api.js';
import { EventStreamParser, pumpEventStream } from './sse.js';

const POLL_MS = 2000;
/* Stats arrive every second and a heartbeat every 10 s: 15 s of silence
 * is a dead connection or a proxy that buffers the stream. */
const STALL_MS = 15000;
/* After the stream itself failed, how long to poll before trying again. */
const STREAM_RETRY_MS = 30000;
/* A stream that lived this long and then ended was dropped (the server
 * cuts clients that fall behind): reconnect at once, as EventSource
 * would, instead of falling back to polling. */
const STREAM_GOOD_MS = 10000;
const LIST_PATH = '/api/v1/sessions?limit=500';
const SESSION_EVENTS = new Set(['created', 'progress', 'completed', 'failed',
  'cancelled', 'expired', 'deleted']);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class LiveFeed {
  /*
   * handlers: onList(sessions, total), onSession(eventType, session),
   * onStats(stats), onMode(mode) with mode one of 'connecting', 'live',
   * 'polling', 'unreachable'; onUnauthorized() when the server turns the
   * credentials down (the feed has stopped then).
   */
  constructor(handlers) {
    this.h = handlers;
    this.generation = 0;
    this.ctl = null;
    this.mode = null;
  }

  start() {
    this.stop();
    this.run(++this.generation);
  }

  stop() {
    this.generation++;
    if (this.ctl !== null)
      this.ctl.abort();
    this.ctl = null;
    this.mode = null;
  }

  /* Reads the list and the stats afresh now (after a cancel, say). */
  async refresh(live = () => true) {
    const [list, stats] = await Promise.all([getJSON(LIST_PATH),
      getJSON('/api/v1/stats')]);
    /* What was asked before a sign-out must not show after it. */
    if (!live())
      return;
    this.h.onList(list.sessions, list.total);
    this.h.onStats(stats);
  }

  setMode(mode) {
    if (mode !== this.mode) {
      this.mode = mode;
      this.h.onMode(mode);
    }
  }

  async run(gen) {
    const live = () => gen === this.generation;
    try {
      while (live()) {
        const r = await this.stream(live);
        if (!live())
          return;
        if (r.lived >= STREAM_GOOD_MS) {
          await sleep(1000);
          continue;
        }
        /* The server is down: poll until it answers, then try the stream
         * at once. The stream alone failed: poll for a while. */
        await this.poll(live, r.unreachable ? 0 : STREAM_RETRY_MS);
      }
    } catch (err) {
      if (live() && err instanceof ApiError && err.unauthorized) {
        this.stop();
        this.h.onUnauthorized();
        return;
      }
      if (live())
        throw err;
    }
  }

  /* One event stream, until it ends; rejects only on a 401. */
  async stream(live) {
    const ctl = new AbortController();
    const opened = Date.now();
    let last = opened;
    let ready = false;
    const early = [];
    const parser = new EventStreamParser((ev) => {
      if (!live())
        return;
      if (ready)
        this.event(ev);
      else
        early.push(ev);
    });
    const watchdog = setInterval(() => {
      if (Date.now() - last > STALL_MS)
        ctl.abort();
    }, 1000);
    this.ctl = ctl;
    this.setMode(this.mode === null ? 'connecting' : this.mode);
    try {
      const res = await request('/api/v1/events',
        { signal: ctl.signal, accept: 'text/event-stream' });
      const pumping = pumpEventStream(res, parser, () => {
        last = Date.now();
      });
      pumping.catch(() => {}); /* awaited below; no unhandled rejection */
      /* Events are not replayed: read the list afresh, then apply what
       * came meanwhile (the caller keeps the newer copy of a session). */
      await this.refresh(live);
      ready = true;
      early.splice(0).forEach((ev) => this.event(ev));
      if (live())
        this.setMode('live');
      await pumping;
      return { lived: Date.now() - opened, unreachable: false };
    } catch (err) {
      if (err instanceof ApiError && err.unauthorized)
        throw err;
      return { lived: Date.now() - opened,
        unreachable: err instanceof ApiError && err.unreachable };
    } finally {
      clearInterval(watchdog);
      ctl.abort();
    }
  }

  /* Polls every 2 s; for at least ms, and until the server answers. */
  async poll(live, ms) {
    const until = Date.now() + ms;
    for (;;) {
      let answered = true;
      try {
        await this.refresh(live);
      } catch (err) {
        if (err instanceof ApiError && err.unauthorized)
          throw err;
        /* Anything but an answer of the gateway's counts as none. */
        answered = err instanceof ApiError && !err.unreachable;
      }
      if (!live())
        return;
      this.setMode(answered ? 'polling' : 'unreachable');
      if (answered && Date.now() >= until)
        return;
      await sleep(POLL_MS);
      if (!live())
        return;
    }
  }

  event(ev) {
    if (ev.type !== 'stats' && !SESSION_EVENTS.has(ev.type))
      return;
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch {
      return; /* a broken event must not stop the feed */
    }
    if (data === null || typeof data !== 'object')
      return;
    if (ev.type === 'stats')
      this.h.onStats(data);
    else
      this.h.onSession(ev.type, data);
  }
}
