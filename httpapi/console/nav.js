// nav.js: the URL hash names the view and its filters (so a view can be
// shared; never the token).

import { FILTERS } from "./api.js";
import { state, publish } from "./store.js";

export function parseHash() {
  const h = location.hash.replace(/^#\/?/, "");
  const [view, qs] = h.split("?");
  const params = new URLSearchParams(qs || "");
  const q = {};
  for (const k of [...FILTERS, "since", "until", "range", "event", "show"]) if (params.get(k)) q[k] = params.get(k);
  return { view: ["events", "alerts", "health", "keys"].includes(view) ? view : "events", q };
}

// setHash shows view with q: a new hash routes by its hashchange event;
// the same hash routes again at once.
export function setHash(view, q) {
  const p = new URLSearchParams();
  for (const k of [...FILTERS, "range", "since", "until", "event", "show"]) if (q[k]) p.set(k, q[k]);
  const s = p.toString();
  const h = `#/${view}${s ? "?" + s : ""}`;
  if (location.hash !== h) location.hash = h;
  else publish("route");
}

export function filterBy(field, value) {
  const q = { ...state.query, [field]: value };
  delete q.event;
  setHash("events", q);
}
