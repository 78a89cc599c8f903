// alerts.js: the alerts view and the alert badge in the header. The data
// are the indelible.alert.fired events (GET /v1/alerts) and the
// indelible.alert.resolved events (GET /v1/events?action=...): both are in
// the log, with receipts. Each alert links to its evidence: the alert's own
// event and the events it cites, opened in the event panel.
//
// State (docs/alerts.md): an absent rule's alert is firing until the
// indelible.alert.resolved of the same rule and group that follows it; a
// threshold rule's alert is firing for its window after it fired (it has no
// resolve event). Everything shown is user data (rule names, groups): it
// only ever goes in as text.

import { $, el, fill, fmtTime } from "./dom.js";
import { apiJSON } from "./api.js";
import { state, subscribe } from "./store.js";

const LIMIT = 200; // alerts fetched (newest first); the badge counts among them
const ACTION_RESOLVED = "indelible.alert.resolved";
const SHOWN = ["firing", "resolved", "all"];

let refreshMs = 15000;
let timer = null;
let gen = 0; // bumps on sign-out, so a late answer is dropped
let alerts = []; // the last list, newest first
let shown = "firing"; // which alerts the view lists

// durationMs parses a Go duration as the rules file writes them (5m,
// 1h30m, 90s, 1.5h); NaN if it is not one.
export function durationMs(s) {
  const units = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)/gy;
  let total = 0;
  let m;
  let end = 0;
  while ((m = re.exec(String(s))) !== null) {
    total += Number(m[1]) * units[m[2]];
    end = re.lastIndex;
  }
  return end > 0 && end === String(s).length ? total : NaN;
}

// pair turns the fired and resolved records (any order) into alerts,
// newest first: {index, rule, severity, group, count, window, evidence,
// firedAt, resolvedAt, resolvedIndex, state, kind}.
export function pair(fired, resolved, now = Date.now()) {
  const res = [...resolved].sort((a, b) => a.index - b.index);
  const used = new Set();
  const out = [...fired]
    .sort((a, b) => a.index - b.index)
    .map((r) => {
      const ev = r.event || {};
      const md = ev.metadata && typeof ev.metadata === "object" ? ev.metadata : {};
      const a = {
        index: r.index,
        rule: String(md.rule ?? ev.resource?.id ?? ""),
        severity: String(md.severity ?? ""),
        group: md.group === undefined || md.group === null ? "" : String(md.group),
        count: Number(md.count) || 0,
        window: String(md.window ?? ""),
        evidence: Array.isArray(md.evidence) ? md.evidence.filter((i) => Number.isSafeInteger(i) && i >= 0) : [],
        firedAt: ev.received_at || ev.time || "",
        resolvedAt: "",
        resolvedIndex: null,
        kind: Number(md.count) > 0 ? "threshold" : "absent",
      };
      if (a.kind === "absent") {
        const rv = res.find((x) => x.index > a.index && !used.has(x.index) && x.event?.metadata?.rule === a.rule && String(x.event?.metadata?.group ?? "") === a.group);
        if (rv) {
          used.add(rv.index);
          a.resolvedAt = rv.event.received_at || rv.event.time || "";
          a.resolvedIndex = rv.index;
        }
      } else {
        const ends = Date.parse(a.firedAt) + durationMs(a.window);
        if (Number.isFinite(ends) && ends <= now) a.resolvedAt = new Date(ends).toISOString();
      }
      a.state = a.resolvedAt ? "resolved" : "firing";
      return a;
    });
  return out.reverse();
}

// fetchAlerts loads the alerts (two audited reads).
async function fetchAlerts() {
  const [fired, resolved] = await Promise.all([
    apiJSON(`/v1/alerts?limit=${LIMIT}`),
    apiJSON(`/v1/events?action=${encodeURIComponent(ACTION_RESOLVED)}&limit=${LIMIT}`),
  ]);
  return pair(fired.events || [], resolved.events || []);
}

// refreshAlerts reloads the alerts, updates the badge, and the view if it
// is shown. Errors show in the badge (and the view); a 401 signs out
// (api.js).
export async function refreshAlerts() {
  const g = gen;
  const b = $("alerts-badge");
  try {
    const list = await fetchAlerts();
    if (g !== gen || !state.token) return;
    alerts = list;
    const n = list.filter((a) => a.state === "firing").length;
    b.hidden = false;
    b.className = `badge ${n ? "bad" : "ok"}`;
    b.textContent = n === 0 ? "No alerts firing" : `${n} alert${n === 1 ? "" : "s"} firing`;
    b.dataset.firing = String(n);
    if (state.view === "alerts") renderList();
  } catch (e) {
    if (g !== gen || !state.token) return;
    b.hidden = false;
    b.className = "badge bad";
    b.textContent = e.status === 0 ? "Alerts: server unreachable" : "Alerts: unknown";
    delete b.dataset.firing;
    if (state.view === "alerts") {
      fill($("alerts-body"), el("p", { class: "empty error", role: "alert" }, e.status === 0 ? "The server is not answering." : `Cannot load the alerts: ${e.message}`));
    }
  }
}

// startAlerts refreshes now and then every refreshMs while signed in.
export function startAlerts() {
  clearInterval(timer);
  refreshAlerts();
  timer = setInterval(refreshAlerts, refreshMs);
}

// setRefreshInterval changes the refresh period (for the browser tests).
export function setRefreshInterval(ms) {
  refreshMs = ms;
  if (timer !== null) startAlerts();
}

// renderAlerts shows the view (routed to #/alerts, optionally ?show=).
export function renderAlerts(show) {
  if (SHOWN.includes(show)) shown = show;
  for (const btn of document.querySelectorAll("#alerts-show button")) btn.setAttribute("aria-pressed", String(btn.dataset.show === shown));
  renderList();
  refreshAlerts();
}

function eventLink(index, label, extra = {}) {
  return el("a", { href: `#/events?range=all&event=${encodeURIComponent(index)}`, "data-index": String(index), ...extra }, label);
}

function renderList() {
  // A refresh must not take the focus from the row the user is on.
  const focused = document.activeElement?.closest?.("#alert-rows tr")?.dataset.index;
  drawList();
  if (focused !== undefined) {
    const tr = document.querySelector(`#alert-rows tr[data-index="${CSS.escape(focused)}"]`);
    if (tr) {
      for (const r of $("alert-rows").rows) r.tabIndex = -1;
      tr.tabIndex = 0;
      tr.focus();
    }
  }
}

function drawList() {
  const list = alerts.filter((a) => shown === "all" || a.state === shown);
  const firing = alerts.filter((a) => a.state === "firing").length;
  $("alerts-status").textContent = `${firing} firing, ${alerts.length - firing} resolved (of the ${LIMIT} newest alerts)`;
  if (!list.length) {
    fill($("alerts-body"), el("p", { class: "empty" }, shown === "firing" ? "No alert is firing." : shown === "resolved" ? "No resolved alert." : "No alert has fired."));
    return;
  }
  const rows = list.map((a, i) => {
    const evidence = a.evidence.length
      ? el("details", { class: "evidence" },
          el("summary", {}, `${a.evidence.length} evidence event${a.evidence.length === 1 ? "" : "s"}`),
          el("ul", {}, a.evidence.map((x) => el("li", {}, eventLink(x, `Event ${x}`, { class: "evidence-link", "aria-label": `Evidence event ${x} of alert ${a.index}` })))))
      : el("span", { class: "muted" }, "no evidence event");
    return el(
      "tr",
      { tabindex: i === 0 ? "0" : "-1", "data-index": String(a.index), "data-state": a.state,
        "aria-label": `Alert ${a.index}: rule ${a.rule}, ${a.severity || "no"} severity, ${a.group ? `group ${a.group}, ` : ""}${a.state}, fired ${fmtTime(a.firedAt)}` },
      el("td", {}, el("span", { class: `state state-${a.state}` }, a.state)),
      el("td", { class: "rule" }, a.rule),
      el("td", {}, el("span", { class: `sev sev-${/^[a-z]+$/.test(a.severity) ? a.severity : "unknown"}` }, a.severity)),
      el("td", { class: "group" }, a.group),
      el("td", { title: a.firedAt }, fmtTime(a.firedAt)),
      el("td", { title: a.resolvedAt }, a.resolvedAt ? (a.resolvedIndex !== null ? eventLink(a.resolvedIndex, fmtTime(a.resolvedAt), { "aria-label": `Resolved at ${fmtTime(a.resolvedAt)}: event ${a.resolvedIndex}` }) : fmtTime(a.resolvedAt)) : ""),
      el("td", { class: "num" }, a.kind === "absent" ? `silent ${a.window}` : `${a.count} in ${a.window}`),
      el("td", {}, eventLink(a.index, `Alert event ${a.index}`, { class: "alert-link" }), " ", evidence),
    );
  });
  fill($("alerts-body"),
    el("table", { class: "timeline alerts", id: "alerts-table" },
      el("caption", { class: "sr-only" }, "Alerts, newest first. Use the arrow keys to move between rows, Enter to open the alert's event."),
      el("thead", {}, el("tr", {}, ["State", "Rule", "Severity", "Group", "Fired", "Resolved", "Count", "Evidence"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", { id: "alert-rows" }, rows)));
}

export function wireAlerts() {
  for (const btn of document.querySelectorAll("#alerts-show button")) {
    btn.addEventListener("click", () => {
      location.hash = `#/alerts?show=${btn.dataset.show}`;
    });
  }
  $("alerts-refresh").addEventListener("click", refreshAlerts);
  $("alerts-body").addEventListener("keydown", (e) => {
    const tr = e.target.closest("#alert-rows tr");
    if (!tr || e.target !== tr) return;
    const rows = [...$("alert-rows").rows];
    const i = rows.indexOf(tr);
    const go = { ArrowDown: i + 1, j: i + 1, ArrowUp: i - 1, k: i - 1, Home: 0, End: rows.length - 1 }[e.key];
    if (go !== undefined) {
      e.preventDefault();
      const next = rows[Math.max(0, Math.min(rows.length - 1, go))];
      for (const r of rows) r.tabIndex = -1;
      next.tabIndex = 0;
      next.focus();
    } else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      tr.querySelector(".alert-link")?.click();
    }
  });
}

// The live tail saw an alert fire or resolve: refresh now.
subscribe("alert", () => {
  if (state.token) refreshAlerts();
});

// A session that ends stops the refresh and forgets the alerts.
subscribe("signout", () => {
  gen++;
  clearInterval(timer);
  timer = null;
  alerts = [];
  $("alerts-badge").hidden = true;
  fill($("alerts-body"));
});
