// health.js: the log health view and the badge in the header: the
// checkpoint verified in this browser, compared with the newest one this
// browser saw before (fork and rollback evidence), and the witnesses.

import { openCheckpoint, loadKeys, checkConsistency, fromBase64, equalBytes } from "./verify.js";
import { $, el, fill, fmtTime, ago } from "./dom.js";
import { api, apiJSON } from "./api.js";
import { keysForVerify } from "./keys.js";

const SEEN_KEY = "indelible.checkpoint.seen";

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

export async function refreshBadge() {
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

export async function renderHealth() {
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

export function wireHealth() {
  $("health-refresh").addEventListener("click", renderHealth);
}
