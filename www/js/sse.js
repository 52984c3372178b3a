// SPDX-License-Identifier: MIT
// Server-Sent Events read from a fetch() Response. EventSource cannot
// send an Authorization header, so the page reads the stream itself and
// parses it as the HTML standard's "event stream interpretation" says.

/* A line longer than this is a broken or hostile stream, not an event. */
const MAX_LINE = 1 << 20;

export class EventStreamParser {
  /*
   * onEvent({type, data, id}) for each dispatched event; onComment(text)
   * for comment lines such as ": heartbeat".
   */
  constructor(onEvent, onComment = () => {}) {
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.buf = '';
    this.skipLF = false; /* the last chunk ended in CR: a LF may follow */
    this.type = '';
    this.data = [];
    this.lastEventId = '';
  }

  /* Feeds decoded text; complete lines are interpreted at once. */
  push(text) {
    if (this.skipLF && text.startsWith('\n'))
      text = text.slice(1);
    this.skipLF = false;
    this.buf += text;
    const eol = /\r\n|\r|\n/g;
    let start = 0;
    let m;
    while ((m = eol.exec(this.buf)) !== null) {
      this.line(this.buf.slice(start, m.index));
      start = eol.lastIndex;
      if (m[0] === '\r' && start === this.buf.length)
        this.skipLF = true;
    }
    this.buf = this.buf.slice(start);
    if (this.buf.length > MAX_LINE)
      throw new Error('event stream line too long');
  }

  line(line) {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.startsWith(':')) {
      this.onComment(line.slice(1).trim());
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' '))
      value = value.slice(1);
    switch (field) {
    case 'event': this.type = value; break;
    case 'data': this.data.push(value); break;
    case 'id': if (!value.includes('\0')) this.lastEventId = value; break;
    default: break; /* retry, and fields the standard says to ignore */
    }
  }

  dispatch() {
    const type = this.type || 'message';
    const data = this.data.join('\n');
    const had = this.data.length > 0;
    this.type = '';
    this.data = [];
    if (had)
      this.onEvent({ type, data, id: this.lastEventId });
  }
}

/*
 * Reads response's body into parser until the stream ends (resolves) or
 * fails or is aborted (rejects). onBytes() is called on every read, so
 * a caller can tell a live stream from a stalled one.
 */
export async function pumpEventStream(response, parser, onBytes = () => {}) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done)
        break;
      onBytes();
      parser.push(decoder.decode(value, { stream: true }));
    }
    parser.push(decoder.decode());
  } finally {
    reader.releaseLock();
  }
}
