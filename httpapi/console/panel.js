// panel.js: the event panel: one event's fields and canonical JSON, its
// receipt to download, and the receipt verified in this browser.

import { verifyReceipt, fromBase64, toBase64, equalBytes, decodeUTF8 } from "./verify.js";
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
  const shown = el("div", { id: "panel-event" });
  renderShown(shown, rec.index, rec.event, b64text(rec.event_bytes), rec.commitment, false);
  const result = el("div", { id: "verify-result", "aria-live": "polite" });
  fill($("panel-body"),
    shown,
    el("div", { class: "actions" },
      el("button", { type: "button", id: "verify", onclick: () => verifyEvent(rec, result, shown) }, "Verify receipt"),
      el("button", { type: "button", id: "download-receipt", class: "secondary", onclick: () => downloadReceipt(rec.index) }, "Download receipt"),
    ),
    result,
  );
}

// renderShown fills box with an event's fields and canonical JSON: as the
// server's record has them, or (verified) as decoded from the opening of a
// receipt verified in this browser, the bytes the log committed to.
function renderShown(box, index, event, canonical, commitment, verified) {
  const ev = event || {};
  const row = (label, value, field) =>
    value === undefined || value === null || value === ""
      ? null
      : el("tr", {}, el("th", { scope: "row" }, label), el("td", {}, String(value), field ? [" ", el("button", { type: "button", class: "val", onclick: () => filterBy(field, value), "aria-label": `Filter by ${label} ${value}` }, "filter")] : null));
  const table = el(
    "table",
    { class: "kv" },
    el("caption", { class: "sr-only" }, "Event fields"),
    row("Index", index),
    row("Time", ev.time && `${fmtTime(ev.time)} (${ev.time})`),
    row("Action", ev.action, "action"),
    row("Actor", ev.actor?.id, "actor"),
    row("Actor type", ev.actor?.type),
    row("Actor IP", ev.actor?.ip),
    row("Submitted by", ev.submitted_by && `${ev.submitted_by} (the token that wrote the event, set by the server; the actor is what the writer claims)`),
    row("Resource", ev.resource?.id, "resource"),
    row("Resource type", ev.resource?.type),
    row("Outcome", ev.outcome, "outcome"),
    row("Source", ev.source, "source"),
    row("Reason", ev.reason),
    row("Writer's id", ev.id),
    row("Received at", ev.received_at),
    row("Commitment", commitment),
  );
  box.dataset.source = verified ? "receipt" : "server";
  fill(box,
    el("p", { id: "panel-source", class: verified ? "source verified" : "source" },
      verified ? "Shown: the event decoded from the receipt verified in this browser, the bytes the log committed to." :
        "Shown: the record as the server sent it, not yet checked. Verify checks the receipt and then shows the event it opens."),
    table,
    ev.metadata ? [el("h3", {}, "Metadata"), el("pre", {}, JSON.stringify(ev.metadata, null, 2))] : null,
    el("h3", {}, verified ? "Canonical JSON (the bytes the commitment covers, from the verified receipt)" : "Canonical JSON (the bytes the commitment covers, as the server sent them)"),
    el("pre", { class: "mono", id: "canonical" }, canonical),
  );
}

// canon is v as JSON with object keys sorted, to compare decoded events.
function canon(v) {
  if (Array.isArray(v)) return `[${v.map(canon).join(",")}]`;
  if (v && typeof v === "object") return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canon(v[k])}`).join(",")}}`;
  return String(JSON.stringify(v));
}

// recordDiff says how the server's record differs from the event a
// verified receipt opens ("" if it does not): its event bytes, and the
// fields of its decoded event.
function recordDiff(rec, res) {
  const diffs = [];
  const bytes = fromBase64(rec.event_bytes || "", false);
  if (!bytes || !equalBytes(bytes, res.eventBytes)) diffs.push("its event_bytes are not the receipt's event bytes");
  const a = rec.event && typeof rec.event === "object" ? rec.event : {};
  const b = res.event && typeof res.event === "object" ? res.event : {};
  const fields = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort().filter((k) => canon(a[k]) !== canon(b[k]));
  if (fields.length) diffs.push(`its event differs in ${fields.join(", ")}`);
  return diffs.join("; ");
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

async function verifyEvent(rec, out, shown) {
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
  // The verdict must cover what the panel shows: once the receipt
  // verifies, the panel shows the event its opening holds, and the
  // server's record must be that event, byte for byte.
  const sShown = { id: "shown", title: "The event shown is the one the receipt opens (the server's record holds the same bytes and fields)", ok: null, detail: "" };
  res.steps.push(sShown);
  if (res.ok) {
    const diff = recordDiff(rec, res);
    if (diff) {
      sShown.ok = false;
      sShown.detail = `The server's record does not match what the log committed to: ${diff}. The panel now shows the committed event.`;
      res.ok = false;
      res.failed = "shown";
    } else {
      sShown.ok = true;
      sShown.detail = `the record's ${res.eventBytes.length} event bytes and its fields equal the receipt's`;
    }
    if (shown.isConnected) renderShown(shown, String(res.index), res.event, decodeUTF8(res.eventBytes) ?? "(the event bytes are not valid UTF-8)", toBase64(res.commitment), true);
  }
  renderVerification(out, res, ks);
}

function renderVerification(out, res, ks) {
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
  out.dataset.keys = ks.pinned ? "pinned" : "server";
  // Without pinned keys the check trusts the server for the keys: the
  // verdict itself says so, not only the small print.
  const verdict = !res.ok
    ? `Verification FAILED at: ${failed ? failed.title : "unknown step"}. Do not trust this event's record.`
    : ks.pinned
      ? "Verified in this browser with the keys pinned in this browser: the log committed to exactly the event shown, in a checkpoint signed by the log and cosigned by its witnesses."
      : "Verified in this browser, but with keys the server itself sent (no keys are pinned): the event shown is the one committed in a checkpoint signed and cosigned by those keys. A server that lies could send its own keys too: pin the keys (Keys) for a check that does not trust the server.";
  fill(out,
    el("p", { class: `verdict ${res.ok ? (ks.pinned ? "ok" : "ok unpinned") : "bad"}`, id: "verdict" }, verdict),
    el("p", { class: "hint" }, `Keys ${ks.source}.`),
    el("ol", { class: "steps" }, items),
  );
}

export function wirePanel() {
  $("panel-close").addEventListener("click", () => closePanel());
}
