// timeline.js: the events view: the filters, the listing (newest first,
// paged as it scrolls, keyboard navigation), the live tail and the exports.

import { makeZip } from "./zip.js";
import { stream } from "./sse.js";
import { $, el, fill, toast, setStatus, fmtTime, toLocalInput, download, stamp } from "./dom.js";
import { FILTERS, SESSION_ENDED, api, apiJSON, fetchReceipt, queryString, timeRange } from "./api.js";
import { setHash, filterBy } from "./nav.js";
import { state, subscribe, publish } from "./store.js";
import { loadHistogram } from "./histogram.js";

const PAGE = 100;

// ---------- filters ----------

export function fillFilters(q) {
  for (const k of FILTERS) $(`f-${k}`).value = q[k] || "";
  const { since, until } = q.range ? { since: "", until: "" } : q;
  $("f-since").value = toLocalInput(since);
  $("f-until").value = toLocalInput(until);
  for (const b of document.querySelectorAll(".quick button")) {
    const on = b.dataset.range === (q.range || (!q.since && !q.until ? "all" : ""));
    b.setAttribute("aria-pressed", String(on));
  }
}

export function readFilters() {
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

// ---------- listing ----------

// listingKey identifies a listing: the URL's filters, without the event.
export function listingKey(q) {
  return JSON.stringify([...FILTERS, "range", "since", "until"].map((k) => q[k] || ""));
}

export async function loadEvents(reset) {
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
    { tabindex: "-1", "data-index": String(r.index), "aria-label": `Event ${r.index}: ${ev.action || ""} by ${ev.actor?.id || "unknown"} (submitted by token ${ev.submitted_by || "unknown"}) at ${fmtTime(ev.time)}` },
    el("td", { title: ev.time }, fmtTime(ev.time)),
    el("td", {}, valueButton("actor", ev.actor?.id)),
    el("td", { class: "submitter", title: "The token that wrote the event (set by the server)" }, ev.submitted_by || ""),
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

export function focusRow(tr) {
  if (!tr) return;
  for (const r of $("rows").rows) r.tabIndex = -1;
  tr.tabIndex = 0;
  tr.focus();
}

export function recordOf(index) {
  return state.rows.find((r) => String(r.index) === String(index)) || state.pending.find((r) => String(r.index) === String(index));
}

function openRow(tr) {
  setHash("events", { ...state.query, event: tr.dataset.index });
}

// ---------- live tail ----------

export function setLive(on) {
  state.live = on;
  const b = $("live");
  b.setAttribute("aria-pressed", String(on));
  b.textContent = on ? "Live tail: on" : "Live tail: off";
  if (on) startLive();
  else stopLive();
}

export function stopLive() {
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
    let reconnectNow = false;
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
      }, (comment) => {
        // The stream says where it starts: a reconnection resumes there,
        // even before any event arrived. At the end of its lifetime the
        // server asks for a reconnection at once.
        const start = /^ stream of events after index (\d+)$/.exec(comment);
        if (start && !state.lastStreamId) state.lastStreamId = start[1];
        if (comment.startsWith(" reconnect:")) reconnectNow = true;
      });
    } catch (e) {
      if (ctl.signal.aborted) return;
      if (e.status === 401) return publish("unauthorized", SESSION_ENDED);
      if (e.status === 403 || e.status === 400) {
        setStatus(`Live tail stopped: ${e.message}`);
        return setLive(false);
      }
    }
    if (ctl.signal.aborted) return;
    if (reconnectNow) continue;
    setStatus("Live: reconnecting…");
    await new Promise((res) => setTimeout(res, delay));
    delay = Math.min(delay * 2, 15000);
  }
}

function onLiveRecord(r) {
  if (state.indexes.has(r.index)) return;
  if ((r.event?.action || "").startsWith("indelible.alert.")) publish("alert", r);
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

export function flushPending() {
  const p = state.pending;
  state.pending = [];
  state.paused = false;
  renderPending();
  prependRecords(p);
  window.scrollTo({ top: 0 });
  focusRow($("rows").rows[0]);
}

// ---------- export ----------

async function exportNDJSON() {
  if (!state.rows.length) return toast("Nothing to export: no rows shown.");
  const text = state.rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
  download(`indelible-events-${stamp()}.ndjson`, new Blob([text], { type: "application/x-ndjson" }));
  toast(`Exported ${state.rows.length} records.`);
}

// exportBundle downloads the evidence bundle (GET /v1/bundle) of the time
// range shown: every event received in it, with the proof that none is
// missing or altered, for `indelible verify-bundle` (docs/evidence.md).
async function exportBundle() {
  const { since, until } = state.range || timeRange(state.query);
  const q = new URLSearchParams({ since: since || "1970-01-01T00:00:00Z", until: until || new Date().toISOString() });
  const btn = $("export-bundle");
  btn.disabled = true;
  setStatus("Building the evidence bundle…");
  try {
    const resp = await api(`/v1/bundle?${q}`);
    download(`indelible-bundle-${stamp()}.tar`, await resp.blob());
    setStatus("Exported the evidence bundle: check it offline with indelible verify-bundle FILE --key log.pub.");
  } catch (e) {
    setStatus(`Export failed: ${e.message}`);
  } finally {
    btn.disabled = false;
  }
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

// ---------- wiring ----------

// A session that ends drops the rows and stops the live tail.
subscribe("signout", () => {
  stopLive();
  state.rows = [];
  state.indexes.clear();
  state.loadedKey = null;
  state.next = "";
  fill($("rows"), );
});

export function wireTimeline() {
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
  $("live").addEventListener("click", () => setLive(!state.live));
  $("pending").addEventListener("click", flushPending);
  window.addEventListener("scroll", () => {
    if (window.scrollY < 50 && state.pending.length && !state.paused && $("panel").hidden) flushPending();
  }, { passive: true });
  $("export-ndjson").addEventListener("click", exportNDJSON);
  $("export-zip").addEventListener("click", exportZip);
  $("export-bundle").addEventListener("click", exportBundle);
}
