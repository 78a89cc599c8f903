// panel.js: the event panel: one event's fields and canonical JSON, its
// receipt to download, and the receipt verified in this browser.

import { verifyReceipt, fromBase64 } from "./verify.js";
import { $, el, fill, toast, fmtTime, download, b64text } from "./dom.js";
import { apiJSON, fetchReceipt } from "./api.js";
import { setHash, filterBy } from "./nav.js";
import { state } from "./store.js";
import { focusRow, recordOf } from "./timeline.js";
import { keysForVerify } from "./keys.js";

export async function openEvent(index) {
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

export function closePanel(updateHash = true) {
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

export function wirePanel() {
  $("panel-close").addEventListener("click", () => closePanel());
}
