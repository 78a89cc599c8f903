// app.js: the Indelible console. Plain ES modules, no framework, no build
// step: this module signs in and out and routes; each view is a module of
// its own (timeline.js with histogram.js, panel.js, alerts.js, health.js, keys.js)
// over one state (store.js). The token lives in sessionStorage and travels
// only in the Authorization header; the URL (hash) carries the view and its
// filters so a view can be shared, never the token.

import { verifyReceipt, parseSize, toBase64 } from "./verify.js";
import { $ } from "./dom.js";
import { api } from "./api.js";
import { parseHash, setHash } from "./nav.js";
import { state, setToken, subscribe, publish } from "./store.js";
import { fillFilters, listingKey, loadEvents, wireTimeline } from "./timeline.js";
import { openEvent, closePanel, wirePanel } from "./panel.js";
import { refreshBadge, renderHealth, wireHealth } from "./health.js";
import { renderKeys, wireKeys } from "./keys.js";
import { renderAlerts, startAlerts, wireAlerts } from "./alerts.js";

// ---------- sign-in ----------

// showSignin shows the sign-in form with msg; without one it keeps the
// message already shown (a navigation after a sign-out must not erase why).
function showSignin(msg = null) {
  $("signin").hidden = false;
  for (const id of ["view-events", "view-alerts", "view-health", "view-keys", "nav", "signout", "health-badge", "alerts-badge"]) $(id).hidden = true;
  $("panel").hidden = true;
  if (msg !== null) $("signin-msg").textContent = msg;
  $("token").value = "";
  $("token").focus();
}

function signOut(msg = "") {
  setToken("");
  publish("signout");
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
  setToken(token);
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("signout").hidden = false;
  refreshBadge();
  startAlerts();
  route();
}

// ---------- routing ----------

function route() {
  if (!state.token) return showSignin();
  const { view, q } = parseHash();
  state.view = view;
  for (const v of ["events", "alerts", "health", "keys"]) $(`view-${v}`).hidden = v !== view;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (view === "events") {
    if (!q.range && !q.since && !q.until && !location.hash.includes("range=all") && !route.visited) {
      // A first visit with no range shows the last 24 hours.
      route.visited = true;
      if (!location.hash.includes("?")) return setHash("events", { ...q, range: "24h" });
    }
    route.visited = true;
    state.query = q;
    fillFilters(q);
    const key = listingKey(q);
    if (key !== state.loadedKey) loadEvents(true);
    if (q.event) openEvent(q.event);
    else closePanel(false);
  } else {
    closePanel(false);
    if (view === "alerts") renderAlerts(q.show);
    if (view === "health") renderHealth();
    if (view === "keys") renderKeys();
  }
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
  wireTimeline();
  wirePanel();
  wireHealth();
  wireKeys();
  wireAlerts();
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("panel").hidden) {
      e.preventDefault();
      closePanel();
    } else if (e.key === "/" && !/INPUT|TEXTAREA|SELECT/.test(document.activeElement?.tagName || "") && state.view === "events" && state.token) {
      e.preventDefault();
      $("f-actor").focus();
    }
  });
  subscribe("route", route);
  subscribe("unauthorized", (msg) => signOut(msg));
  window.addEventListener("hashchange", route);
}

wire();
if (state.token) signIn(state.token);
else showSignin();

// For the browser tests: the verifier, reachable without the UI.
export { verifyReceipt, parseSize, toBase64 };
