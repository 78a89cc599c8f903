// store.js: the console's state, one object the views read and change, and
// a small publish/subscribe so a view can react to what another did without
// importing it (a sign-out stops the live tail; a 401 anywhere signs out).

const TOKEN_KEY = "indelible.token";

export const state = {
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

// setToken keeps the token in the state and in sessionStorage ("" removes it).
export function setToken(token) {
  state.token = token;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

const listeners = new Map(); // topic -> Set of functions

// subscribe calls fn(detail) on every publish(topic, detail); it returns
// the function that unsubscribes.
export function subscribe(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(fn);
  return () => listeners.get(topic).delete(fn);
}

// publish calls the subscribers of topic, in the order they subscribed.
// Topics: "route" (the hash names the view already shown: render it again),
// "unauthorized" (the server refused the token; detail: the message),
// "signout" (the session ended: views drop what they show), "alert" (the
// live tail saw an indelible.alert.* event; detail: its record).
export function publish(topic, detail) {
  for (const fn of [...(listeners.get(topic) || [])]) fn(detail);
}
