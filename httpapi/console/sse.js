// sse.js: reads a text/event-stream (the WHATWG server-sent events format)
// from fetch(), because EventSource cannot send an Authorization header.

// SSEParser turns chunks of text into events {id, event, data}, following
// the event stream interpretation rules: lines end in CRLF, LF or CR; a
// blank line dispatches; "data" lines join with LF; comments start with ":".
export class SSEParser {
  constructor(onEvent, onComment = null) {
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.buf = "";
    this.data = [];
    this.event = "";
    this.id = null;
    this.lastId = null;
  }

  push(text) {
    this.buf += text;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      // A lone CR at the end may be the first half of CRLF: wait for more.
      if (m[0] === "\r" && m.index === this.buf.length - 1) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line);
    }
  }

  line(line) {
    if (line === "") {
      if (this.id !== null) this.lastId = this.id;
      if (this.data.length > 0) {
        this.onEvent({ id: this.lastId, event: this.event || "message", data: this.data.join("\n") });
      }
      this.data = [];
      this.event = "";
      return;
    }
    if (line.startsWith(":")) {
      if (this.onComment) this.onComment(line.slice(1));
      return;
    }
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? "" : line.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

// stream GETs url with headers and calls onEvent for each event (and
// onComment, if given, with the text of each comment line after its colon)
// until the signal aborts or the stream ends; it resolves when the stream
// ends and rejects on an HTTP error (err.status set) or a network error.
export async function stream(url, headers, signal, onEvent, onComment = null) {
  const resp = await fetch(url, { headers: { ...headers, Accept: "text/event-stream" }, signal, cache: "no-store" });
  if (!resp.ok) {
    const err = new Error(`stream: HTTP ${resp.status}`);
    err.status = resp.status;
    try {
      err.message = (await resp.json()).error || err.message;
    } catch {
      // keep the status line
    }
    throw err;
  }
  const parser = new SSEParser(onEvent, onComment);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return parser.lastId;
    parser.push(value);
  }
}
