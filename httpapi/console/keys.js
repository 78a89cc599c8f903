// keys.js: the keys view: the verification keys the server offers, the ones
// pinned in this browser, and the alarm when they differ. Receipts and
// checkpoints are verified with the pinned keys when there are any.

import { loadKeys } from "./verify.js";
import { $, el, fill, fmtTime } from "./dom.js";
import { apiJSON } from "./api.js";
import { state } from "./store.js";

const PIN_KEY = "indelible.keys.pinned";

export async function serverKeys() {
  if (!state.serverKeys) state.serverKeys = await apiJSON("/v1/keys");
  return state.serverKeys;
}

export function pinned() {
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
export async function keysForVerify() {
  let server = null;
  try {
    server = await serverKeys();
  } catch (e) {
    if (!pinned()) throw e;
  }
  const pin = pinned();
  checkPinAlarm(server, pin);
  return { keys: pin || server, pinned: !!pin, source: pin ? "pinned in this browser" : "offered by the server (not pinned)" };
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

export async function renderKeys() {
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

export function wireKeys() {
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
}
