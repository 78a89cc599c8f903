// histogram.js: the bar chart of events over the listing's time range, above
// the timeline; a click on a bar zooms the timeline into that bucket.

import { $, fill, fmtTime } from "./dom.js";
import { apiJSON, queryString } from "./api.js";
import { setHash } from "./nav.js";
import { state } from "./store.js";

function bucketFor(ms) {
  for (const [limit, b, bms] of [
    [2 * 3600e3, "1m", 60e3],
    [12 * 3600e3, "5m", 300e3],
    [2 * 86400e3, "30m", 1800e3],
    [8 * 86400e3, "3h", 3 * 3600e3],
    [60 * 86400e3, "24h", 86400e3],
  ]) {
    if (ms <= limit) return [b, bms];
  }
  return [null, 0];
}

export async function loadHistogram() {
  const fig = $("histogram");
  const body = $("hist-body");
  const { since, until } = state.range;
  if (!since) {
    fig.hidden = false;
    $("hist-caption").textContent = "Pick a time range to see events over time.";
    fill(body, );
    return;
  }
  const end = until ? new Date(until) : new Date();
  const [bucket] = bucketFor(end - new Date(since));
  if (!bucket) {
    $("hist-caption").textContent = "The range is too long for a histogram; narrow it.";
    fill(body, );
    return;
  }
  const gen = state.gen;
  try {
    const h = await apiJSON(`/v1/events/histogram?${queryString(state.query, { bucket })}`);
    if (gen !== state.gen) return;
    fig.hidden = false;
    renderHistogram(h);
  } catch (e) {
    if (e.status === 404 || e.status === 405) fig.hidden = true;
    else $("hist-caption").textContent = `Histogram unavailable: ${e.message}`;
  }
}

function renderHistogram(h) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  const W = 1000;
  const H = 90;
  const n = h.buckets.length || 1;
  const maxC = Math.max(1, ...h.buckets.map((b) => b.count));
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  let peak = h.buckets[0];
  h.buckets.forEach((b, i) => {
    if (b.count > (peak?.count ?? -1)) peak = b;
    if (!b.count) return;
    const bh = Math.max(2, (b.count / maxC) * (H - 4));
    const r = document.createElementNS(NS, "rect");
    r.setAttribute("class", "bar");
    r.setAttribute("x", String((i * W) / n));
    r.setAttribute("width", String(Math.max(1, W / n - 1)));
    r.setAttribute("y", String(H - bh));
    r.setAttribute("height", String(bh));
    const t = document.createElementNS(NS, "title");
    t.textContent = `${b.count} events from ${fmtTime(b.start)} (${h.bucket})`;
    r.append(t);
    r.addEventListener("click", () => {
      const start = new Date(b.start);
      const width = (h.buckets[1] ? new Date(h.buckets[1].start) - new Date(h.buckets[0].start) : 60e3) || 60e3;
      setHash("events", { ...state.query, range: "", since: start.toISOString(), until: new Date(+start + width).toISOString(), event: "" });
    });
    svg.append(r);
  });
  const summary = `${h.total} event${h.total === 1 ? "" : "s"} from ${fmtTime(h.since)} to ${fmtTime(h.until)}, per ${h.bucket}` +
    (peak && peak.count ? `; busiest: ${peak.count} at ${fmtTime(peak.start)}` : "") +
    (h.complete ? "" : `; counted back to ${fmtTime(h.oldest_counted)} only`);
  svg.setAttribute("aria-label", summary);
  $("hist-caption").textContent = summary + ". Click a bar to zoom in.";
  fill($("hist-body"), svg);
}

