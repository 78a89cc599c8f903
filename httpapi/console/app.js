// app.js: the Indelible console. Plain ES modules, no framework, no build
// step. The token lives in sessionStorage and travels only in the
// Authorization header; the URL (hash) carries the view and its filters so a
// view can be shared, never the token.

import { verifyReceipt, openCheckpoint, loadKeys, checkConsistency, fromBase64, toBase64, equalBytes, parseSize } from "./verify.js";
import { makeZip } from "./zip.js";
import { stream } from "./sse.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "indelible.token";
const PIN_KEY = "indelible.keys.pinned";
const SEEN_KEY = "indelible.checkpoint.seen";
const FILTERS = ["actor", "action", "resource", "outcome", "source"];
const RANGES = { "15m": 15 * 60e3, "1h": 3600e3, "24h": 24 * 3600e3, "7d": 7 * 24 * 3600e3 };
const PAGE = 100;

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  view: "events",
  query: {}, // the filters in the URL
  range: null, // the listing's time range, resolved when it started
  loadedKey: null, // the query string the rows were loaded for
  rows: [], // records shown, newest first
  indexes: new Set(),
  next: "",
  loading: false,
  gen: 0, // bumps on every new listing, so stale pages are dropped
  live: false,
  paused: false,
  pending: [],
  liveAbort: null,
  lastStreamId: null,
  serverKeys: null,
  selected: null,
};

// ---------- small helpers ----------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// fill replaces e's children, skipping null and undefined (which
// replaceChildren would turn into the text "null").
function fill(e, ...children) {
  e.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

function toast(msg) {
  const t = $("toast");
  t.textContent = msg;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 4000);
}

function setStatus(msg) {
  $("status").textContent = msg;
}

function fmtTime(s) {
  const d = new Date(s);
  if (isNaN(d)) return String(s ?? "");
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function ago(d) {
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

// toLocalInput formats an RFC 3339 time for a datetime-local input.
function toLocalInput(s) {
  if (!s) return "";
  const d = new Date(s);
  if (isNaN(d)) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function download(name, blob) {
  const a = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60e3);
}

function stamp() {
  return new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
}

// ---------- the API ----------

class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// api fetches path with the token. A 401 signs out with a message; a
// network failure is an APIError with status 0 ("server gone").
async function api(path, opts = {}) {
  let resp;
  try {
    resp = await fetch(path, {
      ...opts,
      cache: "no-store",
      headers: { ...(opts.headers || {}), Authorization: `Bearer ${state.token}` },
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new APIError(0, "Cannot reach the server: it may be down or restarting.");
  }
  if (resp.ok) return resp;
  let msg = `HTTP ${resp.status}`;
  try {
    msg = (await resp.json()).error || msg;
  } catch {
    // not JSON
  }
  if (resp.status === 401 && !opts.noSignout) {
    signOut("Your session ended: the server no longer accepts this token (expired or revoked). Sign in again.");
  }
  throw new APIError(resp.status, msg);
}

const apiJSON = async (path, opts) => (await api(path, opts)).json();

// queryString is the API query for the filters q, with the time range
// resolved once per listing (a quick pick moves with the clock, and a
// cursor is only valid for the exact filters it was issued for).
function queryString(q, extra = {}, range = state.range) {
  const p = new URLSearchParams();
  for (const k of FILTERS) if (q[k]) p.set(k, q[k]);
  const { since, until } = range || timeRange(q);
  if (since) p.set("since", since);
  if (until) p.set("until", until);
  for (const [k, v] of Object.entries(extra)) if (v !== "" && v !== undefined && v !== null) p.set(k, v);
  return p.toString();
}

// timeRange resolves a quick pick (range=1h) against now, or returns the
// explicit since/until.
function timeRange(q) {
  if (q.range && RANGES[q.range]) {
    return { since: new Date(Date.now() - RANGES[q.range]).toISOString(), until: "" };
  }
  return { since: q.since || "", until: q.until || "" };
}

// ---------- sign-in ----------

// showSignin shows the sign-in form with msg; without one it keeps the
// message already shown (a navigation after a sign-out must not erase why).
function showSignin(msg = null) {
  $("signin").hidden = false;
  for (const id of ["view-events", "view-health", "view-keys", "nav", "signout", "health-badge"]) $(id).hidden = true;
  $("panel").hidden = true;
  if (msg !== null) $("signin-msg").textContent = msg;
  $("token").value = "";
  $("token").focus();
}

function signOut(msg = "") {
  state.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  stopLive();
  state.rows = [];
  state.indexes.clear();
  state.loadedKey = null;
  state.next = "";
  fill($("rows"), );
  showSignin(msg);
}

async function signIn(token) {
  state.token = token;
  try {
    await api("/v1/events?limit=1", { noSignout: true });
  } catch (e) {
    state.token = "";
    if (e.status === 401) return showSignin("This token is not accepted (unknown, revoked or mistyped).");
    if (e.status === 403) return showSignin("This token lacks the read scope.");
    return showSignin(e.message);
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("signout").hidden = false;
  refreshBadge();
  route();
}

// ---------- routing ----------

function parseHash() {
  const h = location.hash.replace(/^#\/?/, "");
  const [view, qs] = h.split("?");
  const params = new URLSearchParams(qs || "");
  const q = {};
  for (const k of [...FILTERS, "since", "until", "range", "event"]) if (params.get(k)) q[k] = params.get(k);
  return { view: ["events", "health", "keys"].includes(view) ? view : "events", q };
}

function setHash(view, q) {
  const p = new URLSearchParams();
  for (const k of [...FILTERS, "range", "since", "until", "event"]) if (q[k]) p.set(k, q[k]);
  const s = p.toString();
  const h = `#/${view}${s ? "?" + s : ""}`;
  if (location.hash !== h) location.hash = h;
  else route();
}

function route() {
  if (!state.token) return showSignin();
  const { view, q } = parseHash();
  state.view = view;
  for (const v of ["events", "health", "keys"]) $(`view-${v}`).hidden = v !== view;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (view === "events") {
    if (!q.range && !q.since && !q.until && !location.hash.includes("range=all") && !parseHash.visited) {
      // A first visit with no range shows the last 24 hours.
      parseHash.visited = true;
      if (!location.hash.includes("?")) return setHash("events", { ...q, range: "24h" });
    }
    parseHash.visited = true;
    state.query = q;
    fillFilters(q);
    const key = listingKey(q);
    if (key !== state.loadedKey) loadEvents(true);
    if (q.event) openEvent(q.event);
    else closePanel(false);
  } else {
    closePanel(false);
    if (view === "health") renderHealth();
    if (view === "keys") renderKeys();
  }
}

// ---------- filters ----------

function fillFilters(q) {
  for (const k of FILTERS) $(`f-${k}`).value = q[k] || "";
  const { since, until } = q.range ? { since: "", until: "" } : q;
  $("f-since").value = toLocalInput(since);
  $("f-until").value = toLocalInput(until);
  for (const b of document.querySelectorAll(".quick button")) {
    const on = b.dataset.range === (q.range || (!q.since && !q.until ? "all" : ""));
    b.setAttribute("aria-pressed", String(on));
  }
}

function readFilters() {
  const q = {};
  for (const k of FILTERS) {
    const v = $(`f-${k}`).value.trim();
    if (v) q[k] = v;
  }
  const s = $("f-since").value;
  const u = $("f-until").value;
  if (s) q.since = new Date(s).toISOString();
  if (u) q.until = new Date(u).toISOString();
  if (!s && !u) q.range = "all";
  return q;
}

function filterBy(field, value) {
  const q = { ...state.query, [field]: value };
  delete q.event;
  setHash("events", q);
}

// ---------- timeline ----------

// listingKey identifies a listing: the URL's filters, without the event.
function listingKey(q) {
  return JSON.stringify([...FILTERS, "range", "since", "until"].map((k) => q[k] || ""));
}

async function loadEvents(reset) {
  if (reset) {
    state.gen++;
    state.rows = [];
    state.indexes.clear();
    state.next = "";
    state.loadedKey = listingKey(state.query);
    state.range = timeRange(state.query);
    fill($("rows"), );
    $("empty").hidden = true;
    loadHistogram();
    if (state.live) startLive();
  } else if (!state.next || state.loading) {
    return;
  }
  const gen = state.gen;
  state.loading = true;
  $("more").disabled = true;
  setStatus("Loading…");
  try {
    const page = await apiJSON(`/v1/events?${queryString(state.query, { limit: PAGE, cursor: state.next })}`);
    if (gen !== state.gen) return;
    const fresh = (page.events || []).filter((r) => !state.indexes.has(r.index));
    for (const r of fresh) state.indexes.add(r.index);
    state.rows.push(...fresh);
    $("rows").append(...fresh.map(rowFor));
    state.next = page.next_cursor || "";
    fixRoving();
    showEmpty();
    setStatus(`${state.rows.length} event${state.rows.length === 1 ? "" : "s"} shown${state.next ? ", more below" : ""}`);
  } catch (e) {
    if (gen !== state.gen) return;
    showError(e);
  } finally {
    if (gen === state.gen) {
      state.loading = false;
      $("more").disabled = false;
      $("more").hidden = !state.next;
      // Which view the rows are for (tests and scripts wait on it).
      document.body.dataset.loaded = `${gen}:${location.hash}`;
      // The observer fires on changes only: if the end of the list is
      // still in sight (a tall window, or a scroll during the load), go on.
      if (state.next && state.view === "events" && $("sentinel").getBoundingClientRect().top < innerHeight + 200) {
        setTimeout(() => loadEvents(false), 0);
      }
    }
  }
}

function showEmpty() {
  const e = $("empty");
  e.classList.remove("error");
  if (state.rows.length > 0) {
    e.hidden = true;
    return;
  }
  const any = FILTERS.some((k) => state.query[k]);
  fill(e, 
    "No events match ",
    any ? "these filters" : "this view",
    state.query.range && state.query.range !== "all" ? ` in the last ${state.query.range}` : "",
    ". ",
    state.query.range !== "all" ? el("button", { type: "button", class: "secondary", onclick: () => setHash("events", { ...state.query, range: "all", since: "", until: "" }) }, "Search all time") : "",
    " ",
    any ? el("button", { type: "button", class: "secondary", onclick: () => setHash("events", { range: state.query.range }) }, "Clear filters") : "",
  );
  e.hidden = false;
}

function showError(err) {
  const e = $("empty");
  e.classList.add("error");
  const gone = err.status === 0;
  fill(e, 
    gone ? "The server is not answering. " : `The server refused the request: ${err.message}. `,
    el("button", { type: "button", class: "secondary", onclick: () => loadEvents(true) }, "Retry"),
  );
  e.hidden = false;
  setStatus(gone ? "Server unreachable" : "Error");
}

function valueButton(field, value, label = value) {
  if (!value) return "";
  return el("button", { type: "button", class: "val", tabindex: "-1", title: `Filter by ${field} = ${value}`, "data-field": field, "data-value": value }, label);
}

function rowFor(r) {
  const ev = r.event || {};
  const res = ev.resource ? [ev.resource.type, ev.resource.id].filter(Boolean).join("/") : "";
  const tr = el(
    "tr",
    { tabindex: "-1", "data-index": String(r.index), "aria-label": `Event ${r.index}: ${ev.action || ""} by ${ev.actor?.id || "unknown"} at ${fmtTime(ev.time)}` },
    el("td", { title: ev.time }, fmtTime(ev.time)),
    el("td", {}, valueButton("actor", ev.actor?.id)),
    el("td", {}, valueButton("action", ev.action)),
    el("td", {}, valueButton("resource", ev.resource?.id, res)),
    el("td", { class: ev.outcome ? `outcome-${ev.outcome}` : "" }, valueButton("outcome", ev.outcome)),
    el("td", {}, valueButton("source", ev.source)),
    el("td", { class: "num" }, String(r.index)),
  );
  return tr;
}

// fixRoving keeps exactly one row in the tab order (roving tabindex).
function fixRoving() {
  const rows = [...$("rows").rows];
  if (rows.length && !rows.some((r) => r.tabIndex === 0)) rows[0].tabIndex = 0;
}

function focusRow(tr) {
  if (!tr) return;
  for (const r of $("rows").rows) r.tabIndex = -1;
  tr.tabIndex = 0;
  tr.focus();
}

function recordOf(index) {
  return state.rows.find((r) => String(r.index) === String(index)) || state.pending.find((r) => String(r.index) === String(index));
}

function openRow(tr) {
  setHash("events", { ...state.query, event: tr.dataset.index });
}

// ---------- histogram ----------

function bucketFor(ms) {
  for (const [limit, b, bms] of [
    [2 * 3600e3, "1m", 60e3],
    [12 * 3600e3, "5m", 300e3],
    [2 * 86400e3, "30m", 1800e3],
    [8 * 86400e3, "3h", 3 * 3600e3],
    [60 * 86400e3, "24h", 86400e3],
  ]) {
    if (ms <= limit) return [b, bms];
  }
  return [null, 0];
}

async function loadHistogram() {
  const fig = $("histogram");
  const body = $("hist-body");
  const { since, until } = state.range;
  if (!since) {
    fig.hidden = false;
    $("hist-caption").textContent = "Pick a time range to see events over time.";
    fill(body, );
    return;
  }
  const end = until ? new Date(until) : new Date();
  const [bucket] = bucketFor(end - new Date(since));
  if (!bucket) {
    $("hist-caption").textContent = "The range is too long for a histogram; narrow it.";
    fill(body, );
    return;
  }
  const gen = state.gen;
  try {
    const h = await apiJSON(`/v1/events/histogram?${queryString(state.query, { bucket })}`);
    if (gen !== state.gen) return;
    fig.hidden = false;
    renderHistogram(h);
  } catch (e) {
    if (e.status === 404 || e.status === 405) fig.hidden = true;
    else $("hist-caption").textContent = `Histogram unavailable: ${e.message}`;
  }
}

function renderHistogram(h) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  const W = 1000;
  const H = 90;
  const n = h.buckets.length || 1;
  const maxC = Math.max(1, ...h.buckets.map((b) => b.count));
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  let peak = h.buckets[0];
  h.buckets.forEach((b, i) => {
    if (b.count > (peak?.count ?? -1)) peak = b;
    if (!b.count) return;
    const bh = Math.max(2, (b.count / maxC) * (H - 4));
    const r = document.createElementNS(NS, "rect");
    r.setAttribute("class", "bar");
    r.setAttribute("x", String((i * W) / n));
    r.setAttribute("width", String(Math.max(1, W / n - 1)));
    r.setAttribute("y", String(H - bh));
    r.setAttribute("height", String(bh));
    const t = document.createElementNS(NS, "title");
    t.textContent = `${b.count} events from ${fmtTime(b.start)} (${h.bucket})`;
    r.append(t);
    r.addEventListener("click", () => {
      const start = new Date(b.start);
      const width = (h.buckets[1] ? new Date(h.buckets[1].start) - new Date(h.buckets[0].start) : 60e3) || 60e3;
      setHash("events", { ...state.query, range: "", since: start.toISOString(), until: new Date(+start + width).toISOString(), event: "" });
    });
    svg.append(r);
  });
  const summary = `${h.total} event${h.total === 1 ? "" : "s"} from ${fmtTime(h.since)} to ${fmtTime(h.until)}, per ${h.bucket}` +
    (peak && peak.count ? `; busiest: ${peak.count} at ${fmtTime(peak.start)}` : "") +
    (h.complete ? "" : `; counted back to ${fmtTime(h.oldest_counted)} only`);
  svg.setAttribute("aria-label", summary);
  $("hist-caption").textContent = summary + ". Click a bar to zoom in.";
  fill($("hist-body"), svg);
}

// ---------- live tail ----------

function setLive(on) {
  state.live = on;
  const b = $("live");
  b.setAttribute("aria-pressed", String(on));
  b.textContent = on ? "Live tail: on" : "Live tail: off";
  if (on) startLive();
  else stopLive();
}

function stopLive() {
  if (state.liveAbort) state.liveAbort.abort();
  state.liveAbort = null;
  state.pending = [];
  state.paused = false;
  renderPending();
}

async function startLive() {
  if (state.liveAbort) state.liveAbort.abort();
  const ctl = new AbortController();
  state.liveAbort = ctl;
  state.lastStreamId = null;
  // The stream follows the filters but not the time range: it shows what
  // happens from now on.
  const q = {};
  for (const k of FILTERS) if (state.query[k]) q[k] = state.query[k];
  let delay = 1000;
  while (!ctl.signal.aborted && state.token) {
    const headers = { Authorization: `Bearer ${state.token}` };
    if (state.lastStreamId) headers["Last-Event-ID"] = state.lastStreamId;
    setStatus("Live: connected");
    try {
      await stream(`/v1/events/stream?${new URLSearchParams(q)}`, headers, ctl.signal, (ev) => {
        if (ev.id) state.lastStreamId = ev.id;
        let r;
        try {
          r = JSON.parse(ev.data);
        } catch {
          return;
        }
        delay = 1000;
        onLiveRecord(r);
      });
    } catch (e) {
      if (ctl.signal.aborted) return;
      if (e.status === 401) return signOut("Your session ended: the server no longer accepts this token (expired or revoked). Sign in again.");
      if (e.status === 403 || e.status === 400) {
        setStatus(`Live tail stopped: ${e.message}`);
        return setLive(false);
      }
    }
    if (ctl.signal.aborted) return;
    setStatus("Live: reconnecting…");
    await new Promise((res) => setTimeout(res, delay));
    delay = Math.min(delay * 2, 15000);
  }
}

function onLiveRecord(r) {
  if (state.indexes.has(r.index)) return;
  if (state.paused || window.scrollY > 200 || !$("panel").hidden) {
    if (!state.pending.some((p) => p.index === r.index)) state.pending.push(r);
    renderPending();
    return;
  }
  prependRecords([r]);
}

function prependRecords(rs) {
  // Newest first: the stream delivers in index order, so reverse.
  const fresh = rs.filter((r) => !state.indexes.has(r.index)).reverse();
  for (const r of fresh) state.indexes.add(r.index);
  state.rows.unshift(...fresh);
  const trs = fresh.map((r) => {
    const tr = rowFor(r);
    tr.classList.add("fresh");
    return tr;
  });
  $("rows").prepend(...trs);
  fixRoving();
  showEmpty();
  setStatus(`${state.rows.length} events shown; live`);
}

function renderPending() {
  const b = $("pending");
  const n = state.pending.length;
  b.hidden = n === 0;
  b.textContent = `${n} new event${n === 1 ? "" : "s"}: show`;
}

function flushPending() {
  const p = state.pending;
  state.pending = [];
  state.paused = false;
  renderPending();
  prependRecords(p);
  window.scrollTo({ top: 0 });
  focusRow($("rows").rows[0]);
}

// ---------- keys ----------

async function serverKeys() {
  if (!state.serverKeys) state.serverKeys = await apiJSON("/v1/keys");
  return state.serverKeys;
}

function pinned() {
  try {
    return JSON.parse(localStorage.getItem(PIN_KEY) || "null");
  } catch {
    return null;
  }
}

function sameKeys(a, b) {
  if (!a || !b) return false;
  const ws = (x) => [...(x.witnesses || [])].sort().join("\n");
  const qa = a.quorum || (a.witnesses || []).length;
  const qb = b.quorum || (b.witnesses || []).length;
  return a.log === b.log && ws(a) === ws(b) && qa === qb;
}

// keysForVerify returns the keys receipts are verified with (the pinned
// ones if any) and raises the alarm if the server's keys no longer match.
async function keysForVerify() {
  let server = null;
  try {
    server = await serverKeys();
  } catch (e) {
    if (!pinned()) throw e;
  }
  const pin = pinned();
  checkPinAlarm(server, pin);
  return { keys: pin || server, source: pin ? "pinned in this browser" : "offered by the server (not pinned)" };
}

function checkPinAlarm(server, pin) {
  const a = $("alarm");
  if (pin && server && !sameKeys(server, pin)) {
    a.textContent = `Alarm: the server now offers different verification keys than the ones pinned in this browser on ${fmtTime(pin.pinned_at)}. Receipts are still checked with the pinned keys. Unless you expected a key change, treat this log as compromised; see Keys.`;
    a.hidden = false;
    return true;
  }
  a.hidden = true;
  return false;
}

async function renderKeys() {
  const body = $("keys-body");
  let server = null;
  let err = "";
  try {
    state.serverKeys = null;
    server = await serverKeys();
  } catch (e) {
    err = e.message;
  }
  const pin = pinned();
  const mismatch = checkPinAlarm(server, pin);
  const list = (k) =>
    k
      ? el("dl", {}, el("dt", {}, "Log"), el("dd", { class: "mono" }, k.log), el("dt", {}, "Witnesses"),
        el("dd", { class: "mono" }, (k.witnesses || []).length ? (k.witnesses || []).join("\n") : "none"),
        el("dt", {}, "Quorum"), el("dd", {}, String(k.quorum || (k.witnesses || []).length)))
      : el("p", {}, "none");
  fill(body, 
    el("div", { class: "health" }, el("h3", {}, "Offered by the server"), server ? list(server) : el("p", {}, `Unavailable: ${err}`)),
    el("div", { class: "health" }, el("h3", {}, pin ? `Pinned in this browser (${fmtTime(pin.pinned_at)})` : "Pinned in this browser"), list(pin),
      pin ? el("p", { class: mismatch ? "plain bad" : "plain ok" }, mismatch ? "The pinned keys differ from the server's." : "The pinned keys match the server's.") : el("p", {}, "Nothing pinned: receipts are checked with the server's keys.")),
  );
  const k = pin || server;
  if (k) {
    $("k-log").value = k.log;
    $("k-witnesses").value = (k.witnesses || []).join("\n");
    $("k-quorum").value = String(k.quorum || 0);
  }
}

async function pinKeys(k) {
  try {
    await loadKeys(k);
  } catch (e) {
    $("keys-msg").textContent = `Not pinned: ${e.message}`;
    return;
  }
  localStorage.setItem(PIN_KEY, JSON.stringify({ ...k, pinned_at: new Date().toISOString() }));
  $("keys-msg").textContent = "Keys pinned.";
  renderKeys();
}

// ---------- event panel ----------

function b64text(b64) {
  const b = fromBase64(b64 || "", false);
  return b ? new TextDecoder().decode(b) : "";
}

async function openEvent(index) {
  const panel = $("panel");
  if (state.selected === String(index) && !panel.hidden) return;
  state.selected = String(index);
  for (const r of $("rows").rows) r.classList.toggle("selected", r.dataset.index === String(index));
  let rec = recordOf(index);
  panel.hidden = false;
  $("panel-title").textContent = `Event ${index}`;
  fill($("panel-body"), el("p", {}, "Loading…"));
  panel.focus();
  if (!rec) {
    try {
      rec = await apiJSON(`/v1/events/${encodeURIComponent(index)}`);
    } catch (e) {
      fill($("panel-body"), el("p", { class: "empty error" }, e.status === 404 ? "No such event." : e.status === 410 ? `This event was erased: ${e.message}` : e.message));
      return;
    }
  }
  if (state.selected !== String(index)) return;
  renderPanel(rec);
}

function renderPanel(rec) {
  const ev = rec.event || {};
  const row = (label, value, field) =>
    value === undefined || value === null || value === ""
      ? null
      : el("tr", {}, el("th", { scope: "row" }, label), el("td", {}, String(value), field ? [" ", el("button", { type: "button", class: "val", onclick: () => filterBy(field, value), "aria-label": `Filter by ${label} ${value}` }, "filter")] : null));
  const table = el(
    "table",
    { class: "kv" },
    el("caption", { class: "sr-only" }, "Event fields"),
    row("Index", rec.index),
    row("Time", ev.time && `${fmtTime(ev.time)} (${ev.time})`),
    row("Action", ev.action, "action"),
    row("Actor", ev.actor?.id, "actor"),
    row("Actor type", ev.actor?.type),
    row("Actor IP", ev.actor?.ip),
    row("Resource", ev.resource?.id, "resource"),
    row("Resource type", ev.resource?.type),
    row("Outcome", ev.outcome, "outcome"),
    row("Source", ev.source, "source"),
    row("Reason", ev.reason),
    row("Writer's id", ev.id),
    row("Received at", ev.received_at),
    row("Submitted by", ev.submitted_by),
    row("Commitment", rec.commitment),
  );
  const result = el("div", { id: "verify-result", "aria-live": "polite" });
  fill($("panel-body"), 
    table,
    ev.metadata ? [el("h3", {}, "Metadata"), el("pre", {}, JSON.stringify(ev.metadata, null, 2))] : null,
    el("h3", {}, "Canonical JSON (the bytes the commitment covers)"),
    el("pre", { class: "mono", id: "canonical" }, b64text(rec.event_bytes)),
    el("div", { class: "actions" },
      el("button", { type: "button", id: "verify", onclick: () => verifyEvent(rec, result) }, "Verify receipt"),
      el("button", { type: "button", id: "download-receipt", class: "secondary", onclick: () => downloadReceipt(rec.index) }, "Download receipt"),
    ),
    result,
  );
}

function closePanel(updateHash = true) {
  if ($("panel").hidden) return;
  $("panel").hidden = true;
  const idx = state.selected;
  state.selected = null;
  for (const r of $("rows").rows) r.classList.remove("selected");
  if (updateHash) {
    const q = { ...state.query };
    delete q.event;
    setHash("events", q);
  }
  const tr = [...$("rows").rows].find((r) => r.dataset.index === idx);
  if (tr) focusRow(tr);
}

async function fetchReceipt(index) {
  const resp = await api(`/v1/events/${encodeURIComponent(index)}/receipt`);
  return new Uint8Array(await resp.arrayBuffer());
}

async function downloadReceipt(index) {
  try {
    const b = await fetchReceipt(index);
    download(`${index}.tlog-proof`, new Blob([b], { type: "text/plain" }));
  } catch (e) {
    toast(`Receipt unavailable: ${e.message}`);
  }
}

async function verifyEvent(rec, out) {
  fill(out, el("p", {}, "Verifying in this browser…"));
  out.removeAttribute("data-verdict");
  let data;
  let ks;
  try {
    [data, ks] = await Promise.all([fetchReceipt(rec.index), keysForVerify()]);
  } catch (e) {
    fill(out, el("p", { class: "verdict bad" }, `Cannot verify: ${e.message}`));
    out.dataset.verdict = "error";
    return;
  }
  const res = await verifyReceipt(data, ks.keys, {
    commitment: fromBase64(rec.commitment || "", false),
    index: BigInt(rec.index),
  });
  renderVerification(out, res, ks.source);
}

function renderVerification(out, res, keySource) {
  const items = res.steps.map((s) => {
    const cls = s.ok === true ? "ok" : s.ok === false ? "bad" : "skip";
    const mark = s.ok === true ? "✓ passed" : s.ok === false ? "✗ FAILED" : "– not run";
    const li = el("li", { class: cls, "data-step": s.id, "data-ok": String(s.ok) },
      el("span", { class: "mark" }, mark), " ", s.title,
      s.detail ? el("span", { class: "detail mono" }, s.detail) : null);
    if (s.witnesses && s.witnesses.length) {
      li.append(el("ul", {}, s.witnesses.map((w) =>
        el("li", { "data-witness": w.name },
          `${w.name}: ${!w.present ? "no cosignature" : w.ok ? "cosignature verified" : "cosignature INVALID"}` +
          (w.time && !isNaN(w.time) ? `, cosigned ${w.time.toISOString()}` : "")))));
    }
    return li;
  });
  const failed = res.steps.find((s) => s.ok === false);
  out.dataset.verdict = res.ok ? "ok" : "bad";
  out.dataset.failed = failed ? failed.id : "";
  fill(out, 
    el("p", { class: `verdict ${res.ok ? "ok" : "bad"}`, id: "verdict" },
      res.ok ? "Verified in this browser: the log committed to exactly these event bytes, in a checkpoint signed by the log and cosigned by its witnesses." :
        `Verification FAILED at: ${failed ? failed.title : "unknown step"}. Do not trust this event's record.`),
    el("p", { class: "hint" }, `Keys ${keySource}.`),
    el("ol", { class: "steps" }, items),
  );
}

// ---------- export ----------

async function exportNDJSON() {
  if (!state.rows.length) return toast("Nothing to export: no rows shown.");
  const text = state.rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
  download(`indelible-events-${stamp()}.ndjson`, new Blob([text], { type: "application/x-ndjson" }));
  toast(`Exported ${state.rows.length} records.`);
}

async function exportZip() {
  if (!state.rows.length) return toast("Nothing to export: no rows shown.");
  const rows = [...state.rows];
  const files = new Array(rows.length);
  let done = 0;
  let next = 0;
  const btn = $("export-zip");
  btn.disabled = true;
  try {
    const worker = async () => {
      while (next < rows.length) {
        const i = next++;
        files[i] = { name: `${rows[i].index}.tlog-proof`, data: await fetchReceipt(rows[i].index) };
        setStatus(`Fetching receipts: ${++done} of ${rows.length}`);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    download(`indelible-receipts-${stamp()}.zip`, new Blob([makeZip(files)], { type: "application/zip" }));
    setStatus(`Exported ${rows.length} receipts.`);
  } catch (e) {
    setStatus(`Export failed: ${e.message}`);
  } finally {
    btn.disabled = false;
  }
}

// ---------- log health ----------

function seenCheckpoints() {
  try {
    return JSON.parse(localStorage.getItem(SEEN_KEY) || "{}");
  } catch {
    return {};
  }
}

// checkHealth fetches the checkpoint and verifies it with the keys, then
// compares it with the newest checkpoint this browser verified before: a
// smaller size, the same size with another root, or a consistency proof
// that fails is evidence of a fork (or a rollback).
async function checkHealth() {
  const out = { ok: false, problems: [], fork: null };
  const { keys: keySpec, source } = await keysForVerify();
  out.keySource = source;
  const keys = await loadKeys(keySpec);
  out.keys = keys;
  const resp = await api("/checkpoint");
  const cpBytes = new Uint8Array(await resp.arrayBuffer());
  out.raw = new TextDecoder().decode(cpBytes);
  const o = await openCheckpoint(cpBytes, keys);
  out.open = o;
  if (!o.checkpoint) {
    out.problems.push(`The checkpoint does not verify: ${o.error}.`);
    return out;
  }
  if (!o.log.ok) out.problems.push(`The checkpoint is not validly signed by the log key: ${o.error}.`);
  else if (!o.ok) out.problems.push(`The checkpoint does not meet the witness policy: ${o.error}.`);
  try {
    out.status = await apiJSON("/v1/log/status");
  } catch {
    out.status = null;
  }
  const cp = o.checkpoint;
  const seenAll = seenCheckpoints();
  const seen = seenAll[cp.origin];
  if (o.log.ok && seen) {
    const oldSize = BigInt(seen.size);
    const oldRoot = fromBase64(seen.root);
    let evidence = null;
    if (cp.size < oldSize) {
      evidence = `The log now shows ${cp.size} entries, fewer than the ${seen.size} it showed this browser on ${fmtTime(seen.at)}. A log that shrinks has rewritten its history.`;
    } else if (cp.size === oldSize && !equalBytes(cp.root, oldRoot)) {
      evidence = `The log shows two different trees of the same size ${seen.size}: root ${seen.root} (seen ${fmtTime(seen.at)}) and now ${cp.rootB64}.`;
    } else if (cp.size > oldSize) {
      try {
        const p = await apiJSON(`/v1/proof/consistency?from=${seen.size}&to=${cp.size}`);
        const hashes = (p.hashes || []).map((h) => fromBase64(h));
        if (hashes.some((h) => !h || h.length !== 32) || !(await checkConsistency(oldSize, oldRoot, cp.size, cp.root, hashes))) {
          evidence = `The log's current tree (size ${cp.size}) does not extend the tree of size ${seen.size} it showed this browser on ${fmtTime(seen.at)}: the consistency proof fails.`;
        }
      } catch (e) {
        out.problems.push(`Could not check consistency with the checkpoint seen before: ${e.message}.`);
      }
    }
    if (evidence) {
      out.fork = { evidence, old: seen, now: { size: String(cp.size), root: cp.rootB64 } };
      out.problems.push(evidence);
    }
  }
  if (o.log.ok && !out.fork && (!seen || cp.size >= BigInt(seen.size))) {
    seenAll[cp.origin] = { size: String(cp.size), root: cp.rootB64, at: new Date().toISOString() };
    localStorage.setItem(SEEN_KEY, JSON.stringify(seenAll));
  }
  for (const w of out.status?.witnesses || []) {
    if (/fork|inconsistent|conflict/i.test(w.last_error || "")) out.problems.push(`Witness ${w.name} reports: ${w.last_error}`);
  }
  out.ok = out.problems.length === 0;
  return out;
}

async function refreshBadge() {
  const b = $("health-badge");
  try {
    const h = await checkHealth();
    b.hidden = false;
    b.className = `badge ${h.ok ? "ok" : "bad"}`;
    b.textContent = h.ok ? `Log OK · ${h.open.checkpoint.size} entries` : "Log: problem, see Log health";
    return h;
  } catch (e) {
    b.hidden = false;
    b.className = "badge bad";
    b.textContent = e.status === 0 ? "Server unreachable" : "Log: unknown";
    return null;
  }
}

async function renderHealth() {
  const body = $("health-body");
  fill(body, el("p", {}, "Checking…"));
  let h;
  try {
    h = await checkHealth();
  } catch (e) {
    fill(body, el("p", { class: "empty error" }, e.status === 0 ? "The server is not answering." : `Cannot check the log: ${e.message}`));
    return;
  }
  refreshBadge();
  const o = h.open;
  const cp = o.checkpoint;
  const ws = o.witnesses;
  const st = h.status;
  const plain = cp
    ? `The log ${cp.origin} holds ${cp.size} entries. Its newest checkpoint is ${o.log.ok ? "signed by the log's key (verified in this browser)" : "NOT validly signed by the log's key"}` +
      (ws.length ? ` and cosigned by ${ws.filter((w) => w.ok).length} of ${ws.length} witnesses (${h.keys.quorum} required).` : "; no witnesses are configured, so nobody else vouches for this history.") +
      (h.fork ? " FORK EVIDENCE: see below." : " No fork evidence.")
    : "The log's checkpoint could not be verified.";
  const wrows = ws.map((w) => {
    const s = (st?.witnesses || []).find((x) => x.name === w.name);
    return el("tr", {},
      el("td", { class: "mono" }, w.name),
      el("td", {}, !w.present ? "no cosignature on this checkpoint" : w.ok ? "verified" : "INVALID"),
      el("td", {}, w.time && !isNaN(w.time) ? `${w.time.toISOString()} (${ago(w.time)})` : "—"),
      el("td", {}, s ? `${s.known}` : "—"),
      el("td", {}, s ? (s.last_error ? `${s.failures} failures; last: ${s.last_error}` : `${s.failures} failures, last request fine`) : "—"),
    );
  });
  fill(body, 
    el("div", { class: "health" },
      el("p", { class: `plain ${h.ok ? "ok" : "bad"}`, id: "health-plain" }, plain),
      h.problems.length ? el("ul", { id: "health-problems" }, h.problems.map((p) => el("li", {}, p))) : null,
      el("dl", {},
        el("dt", {}, "Origin"), el("dd", { class: "mono" }, cp?.origin ?? "—"),
        el("dt", {}, "Tree size"), el("dd", { id: "health-size" }, cp ? String(cp.size) : "—"),
        el("dt", {}, "Root hash"), el("dd", { class: "mono" }, cp?.rootB64 ?? "—"),
        el("dt", {}, "Log signature"), el("dd", {}, o.log.ok ? "valid" : o.log.present ? "INVALID" : "missing"),
        st ? [el("dt", {}, "Newest log-signed size"), el("dd", {}, String(st.published))] : null,
        st && st.witnessed !== null ? [el("dt", {}, "Newest witnessed size"), el("dd", {}, String(st.witnessed))] : null,
        el("dt", {}, "Keys"), el("dd", {}, h.keySource),
      ),
      el("h3", {}, "Witnesses"),
      ws.length
        ? el("table", {}, el("thead", {}, el("tr", {}, ["Witness", "On this checkpoint", "Last cosignature", "Size it knows", "Requests"].map((t) => el("th", { scope: "col" }, t)))), el("tbody", {}, wrows))
        : el("p", {}, "No witnesses are configured for this log."),
      h.fork ? [el("h3", {}, "Fork evidence"), el("p", { class: "plain bad" }, h.fork.evidence),
        el("pre", {}, `seen before: size ${h.fork.old.size} root ${h.fork.old.root} at ${h.fork.old.at}\nnow:         size ${h.fork.now.size} root ${h.fork.now.root}`)] : null,
      el("h3", {}, "Checkpoint as served"),
      el("pre", { class: "mono" }, h.raw),
    ),
  );
}

// ---------- wiring ----------

function wire() {
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const t = $("token").value.trim();
    $("token").value = "";
    if (t) signIn(t);
  });
  $("signout").addEventListener("click", () => signOut("Signed out."));
  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    state.loadedKey = null; // Apply always refreshes
    setHash("events", readFilters());
  });
  $("f-clear").addEventListener("click", () => setHash("events", { range: "24h" }));
  for (const b of document.querySelectorAll(".quick button")) {
    b.addEventListener("click", () => {
      const q = readFilters();
      delete q.since;
      delete q.until;
      q.range = b.dataset.range;
      state.loadedKey = null; // a quick pick always refreshes (it moves with the clock)
      setHash("events", q);
    });
  }
  $("more").addEventListener("click", () => loadEvents(false));
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && state.next && !state.loading && state.view === "events") loadEvents(false);
  }, { rootMargin: "200px" }).observe($("sentinel"));

  $("rows").addEventListener("click", (e) => {
    const v = e.target.closest(".val");
    if (v) return filterBy(v.dataset.field, v.dataset.value);
    const tr = e.target.closest("tr");
    if (tr) {
      focusRow(tr);
      openRow(tr);
    }
  });
  $("rows").addEventListener("keydown", (e) => {
    const tr = e.target.closest("tr");
    if (!tr) return;
    const rows = [...$("rows").rows];
    const i = rows.indexOf(tr);
    const go = { ArrowDown: i + 1, j: i + 1, ArrowUp: i - 1, k: i - 1, Home: 0, End: rows.length - 1 }[e.key];
    if (go !== undefined) {
      e.preventDefault();
      focusRow(rows[Math.max(0, Math.min(rows.length - 1, go))]);
      if (go >= rows.length - 3) loadEvents(false);
    } else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      openRow(tr);
    }
  });
  $("panel-close").addEventListener("click", () => closePanel());
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("panel").hidden) {
      e.preventDefault();
      closePanel();
    } else if (e.key === "/" && !/INPUT|TEXTAREA|SELECT/.test(document.activeElement?.tagName || "") && state.view === "events" && state.token) {
      e.preventDefault();
      $("f-actor").focus();
    }
  });
  $("live").addEventListener("click", () => setLive(!state.live));
  $("pending").addEventListener("click", flushPending);
  window.addEventListener("scroll", () => {
    if (window.scrollY < 50 && state.pending.length && !state.paused && $("panel").hidden) flushPending();
  }, { passive: true });
  $("export-ndjson").addEventListener("click", exportNDJSON);
  $("export-zip").addEventListener("click", exportZip);
  $("health-refresh").addEventListener("click", renderHealth);
  $("keys-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const witnesses = $("k-witnesses").value.split("\n").map((s) => s.trim()).filter(Boolean);
    pinKeys({ log: $("k-log").value.trim(), witnesses, quorum: parseInt($("k-quorum").value || "0", 10) || 0 });
  });
  $("k-server").addEventListener("click", async () => {
    try {
      state.serverKeys = null;
      await pinKeys(await serverKeys());
    } catch (e) {
      $("keys-msg").textContent = `The server's keys are unavailable: ${e.message}`;
    }
  });
  $("k-unpin").addEventListener("click", () => {
    localStorage.removeItem(PIN_KEY);
    $("keys-msg").textContent = "Unpinned: receipts are checked with the server's keys.";
    renderKeys();
  });
  window.addEventListener("hashchange", route);
}

wire();
if (state.token) signIn(state.token);
else showSignin();

// For the browser tests: the verifier, reachable without the UI.
export { verifyReceipt, parseSize, toBase64 };
