// api.js: the server's API as the views call it, with the token from the
// store, and the query string of a listing.

import { state, publish } from "./store.js";

export const FILTERS = ["actor", "action", "resource", "outcome", "source"];
export const RANGES = { "15m": 15 * 60e3, "1h": 3600e3, "24h": 24 * 3600e3, "7d": 7 * 24 * 3600e3 };

export const SESSION_ENDED = "Your session ended: the server no longer accepts this token (expired or revoked). Sign in again.";

export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// api fetches path with the token. A 401 signs out with a message; a
// network failure is an APIError with status 0 ("server gone").
export async function api(path, opts = {}) {
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
  if (resp.status === 401 && !opts.noSignout) publish("unauthorized", SESSION_ENDED);
  throw new APIError(resp.status, msg);
}

export const apiJSON = async (path, opts) => (await api(path, opts)).json();

export async function fetchReceipt(index) {
  const resp = await api(`/v1/events/${encodeURIComponent(index)}/receipt`);
  return new Uint8Array(await resp.arrayBuffer());
}

// queryString is the API query for the filters q, with the time range
// resolved once per listing (a quick pick moves with the clock, and a
// cursor is only valid for the exact filters it was issued for).
export function queryString(q, extra = {}, range = state.range) {
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
export function timeRange(q) {
  if (q.range && RANGES[q.range]) {
    return { since: new Date(Date.now() - RANGES[q.range]).toISOString(), until: "" };
  }
  return { since: q.since || "", until: q.until || "" };
}
