// The dashboard: the same HTTP API as every client, with the token the user enters (kept
// in localStorage). No framework, no build step: served as is by portrait at /.
const $ = (sel) => document.querySelector(sel);
const TOKEN_KEY = "portrait.token";

function headers() {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function setStatus(text, error = false) {
  const s = $("#status");
  s.textContent = text;
  s.className = error ? "error" : "";
}

// GET a route; JSON (or text) on 2xx, else an Error carrying the API's message.
async function get(path, { text = false, quiet = false } = {}) {
  const r = await fetch(path, { headers: headers() });
  if (!r.ok) {
    let message = `${r.status}`;
    try { message = (await r.json()).error.message; } catch { /* not JSON */ }
    const e = new Error(`${path}: ${message}`);
    e.status = r.status;
    if (!quiet) setStatus(e.message, true);
    throw e;
  }
  return text ? r.text() : r.json();
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function fillTable(sel, rows, empty) {
  const body = $(`${sel} tbody`);
  body.replaceChildren();
  if (!rows.length) {
    const cols = $(`${sel} thead tr`).children.length;
    body.append(el("tr", {}, el("td", { colspan: cols, class: "empty" }, empty)));
    return;
  }
  for (const cells of rows) {
    body.append(el("tr", {}, ...cells.map((c) => (c instanceof Node ? el("td", {}, c) : el("td", typeof c === "number" ? { class: "num" } : {}, c ?? "")))));
  }
}

// ---- pipeline health: /metrics sampled every few seconds, kept for the last minutes ----

const samples = [];  // {t, accepted, rejected, lag, dead}
const KEEP = 60;     // samples (5 minutes at 5 s)

function parseMetrics(text) {
  const sum = (name, filter = () => true) => {
    let total = 0, seen = false;
    for (const line of text.split("\n")) {
      if (!line.startsWith(name) || line.startsWith("#")) continue;
      const m = line.match(/^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+)$/);
      if (!m || m[1] !== name || !filter(m[2] || "")) continue;
      total += Number(m[3]);
      seen = true;
    }
    return seen ? total : 0;
  };
  const reasons = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^portrait_events_rejected_total\{reason="([^"]*)"\} ([0-9.eE+-]+)$/);
    if (m) reasons[m[1]] = Number(m[2]);
  }
  return {
    accepted: sum("portrait_events_accepted_total"),
    rejected: sum("portrait_events_rejected_total"),
    lag: sum("portrait_processor_lag_events"),
    dead: sum("portrait_dead_letters_total"),
    reasons,
  };
}

function spark(id, values) {
  const s = $(id);
  s.replaceChildren();
  if (values.length < 2) return;
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => `${(i * 120) / (KEEP - 1)},${28 - (v / max) * 26}`).join(" ");
  s.append(svg("polyline", { points: pts }));
}

async function refreshHealth() {
  const m = parseMetrics(await get("/metrics", { text: true }));
  samples.push({ t: Date.now(), ...m });
  if (samples.length > KEEP) samples.shift();
  const rates = (key) => samples.slice(1).map((s, i) => Math.max(0, (s[key] - samples[i][key]) / ((s.t - samples[i].t) / 1000)));
  const acc = rates("accepted"), rej = rates("rejected");
  $("#rate-accepted").textContent = acc.length ? acc[acc.length - 1].toFixed(1) : "…";
  $("#rate-rejected").textContent = rej.length ? rej[rej.length - 1].toFixed(1) : "…";
  $("#lag").textContent = m.lag;
  $("#dead").textContent = m.dead;
  spark("#spark-accepted", acc);
  spark("#spark-rejected", rej);
  spark("#spark-lag", samples.map((s) => s.lag));
  spark("#spark-dead", samples.map((s) => s.dead));
  fillTable("#rejections", Object.entries(m.reasons).sort((a, b) => b[1] - a[1]), "no event rejected since start");
}

// ---- new users per channel by hour ----

async function refreshChannels() {
  const q = new URLSearchParams({ granularity: "hour" });
  for (const k of ["product", "from", "to"]) if ($(`#${k}`).value) q.set(k, $(`#${k}`).value);
  const data = await get(`/v1/channels/new-users?${q}`);
  const chart = $("#chart");
  chart.replaceChildren();
  const channels = data.channels.filter((c) => c.total > 0 || c.buckets.some((b) => b.realtime > 0));
  if (!channels.length) {
    chart.append(el("p", { class: "empty" }, "no new users in this range"));
    return;
  }
  for (const c of channels) {
    const buckets = c.buckets.filter((b) => b.new_users > 0 || b.realtime > 0);
    const max = Math.max(1, ...buckets.map((b) => Math.max(b.new_users, b.realtime)));
    const w = Math.max(240, buckets.length * 26), h = 120;
    const s = svg("svg", { viewBox: `0 0 ${w} ${h + 30}`, role: "img" });
    buckets.forEach((b, i) => {
      const x = i * 26 + 4, bh = (b.new_users / max) * h;
      const bar = svg("rect", { class: `bar ${b.calibrated ? "calibrated" : "realtime"}`, x, y: h - bh, width: 18, height: bh,
                                "data-hour": b.start, "data-value": b.new_users, "data-realtime": b.realtime });
      bar.append(svg("title"));
      bar.firstChild.textContent = `${b.start}: ${b.new_users} new users${b.calibrated ? ` (calibrated; real time said ${b.realtime})` : ""}`;
      s.append(bar);
      if (b.calibrated && b.realtime !== b.new_users) {
        const rh = (b.realtime / max) * h;
        s.append(svg("rect", { class: "bar outline", x, y: h - rh, width: 18, height: rh }));
      }
      const label = svg("text", { x: x + 9, y: h + 12, "text-anchor": "middle" });
      label.textContent = b.start.slice(11, 13);
      s.append(label);
      const value = svg("text", { x: x + 9, y: Math.max(10, h - bh - 2), "text-anchor": "middle" });
      value.textContent = b.new_users;
      s.append(value);
    });
    chart.append(el("div", { class: "channel", "data-channel": c.channel }, el("h3", {}, `${c.channel} · ${c.total}`), s));
  }
}

// ---- profile lookup ----

async function lookUp(id) {
  const out = $("#profile-out");
  out.replaceChildren();
  let p;
  try {
    p = await get(`/v1/profiles/${encodeURIComponent(id)}`, { quiet: true });
  } catch (e) {
    out.append(el("p", { class: "empty" }, e.status === 404 ? `no profile for ${id}` : e.message));
    return;
  }
  const fresh = p.freshness || {};
  out.append(el("p", {}, el("strong", { id: "profile-uid" }, p.uid),
                p.resolved_from ? ` (asked as ${p.resolved_from})` : "",
                ` · real time updated ${fresh.realtime_updated_at ? new Date(fresh.realtime_updated_at).toISOString() : "never"}`,
                ` · snapshot ${fresh.snapshot ? `${fresh.snapshot.date} v${fresh.snapshot.version}` : "none"}`));
  if (p.devices && p.devices.length) out.append(el("p", {}, "devices: ", ...p.devices.map((d) => el("span", { class: "pill" }, d))));
  if (p.segments) out.append(el("p", { id: "profile-segments" }, "segments: ", ...(p.segments.length ? p.segments.map((s) => el("span", { class: "pill" }, s)) : ["none"])));
  const table = el("table", { id: "profile-tags" }, el("thead", {}, el("tr", {}, el("th", {}, "tag"), el("th", {}, "value"), el("th", {}, "updated"))));
  const body = el("tbody");
  for (const [name, t] of Object.entries(p.tags)) {
    body.append(el("tr", { "data-tag": name }, el("td", {}, name), el("td", {}, el("code", {}, JSON.stringify(t.value))),
                   el("td", {}, new Date(t.updated_at).toISOString())));
  }
  table.append(body);
  out.append(table);
  try {
    const d = await get(`/v1/decisions/${encodeURIComponent(p.uid)}?limit=10`, { quiet: true });
    const rows = d.decisions.map((x) => el("li", {}, `${x.at_iso || x.at} ${x.rule} → ${x.action}${x.key ? ` (${x.key})` : ""}`));
    out.append(el("h3", {}, "recent decisions"), rows.length ? el("ul", { id: "profile-decisions" }, ...rows) : el("p", { class: "empty" }, "none"));
  } catch { /* decisions off */ }
}

// ---- failures and snapshots ----

async function refreshFailures() {
  const f = await get("/v1/failed?limit=20");
  fillTable("#failed", f.failed.map((x) => [typeof x.time === "number" ? new Date(x.time).toISOString() : x.time, x.source, x.reason, x.error, el("code", {}, x.payload)]), "no rejected event");
  const d = await get("/v1/dlq?limit=20");
  fillTable("#dlq", d.dead.map((x) => [x.sink, x.key, x.failures, x.error]), "no dead letter");
}

async function refreshSnapshots() {
  const s = await get("/v1/snapshots");
  fillTable("#snapshot-log", s.snapshots.slice().reverse().map((x) => [x.date, x.version, x.users, x.bytes, x.completed_at, x.source, x.retired_at || ""]),
            "no snapshot yet");
}

async function refreshAll() {
  const parts = [refreshHealth, refreshChannels, refreshFailures, refreshSnapshots];
  const results = await Promise.allSettled(parts.map((f) => f()));
  const failed = results.filter((r) => r.status === "rejected");
  if (!failed.length) setStatus(`updated ${new Date().toLocaleTimeString()}`);
}

$("#token").value = localStorage.getItem(TOKEN_KEY) || "";
$("#token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const v = $("#token").value.trim();
  if (v) localStorage.setItem(TOKEN_KEY, v); else localStorage.removeItem(TOKEN_KEY);
  refreshAll();
});
$("#channels-form").addEventListener("submit", (e) => { e.preventDefault(); refreshChannels().catch(() => {}); });
$("#profile-form").addEventListener("submit", (e) => { e.preventDefault(); lookUp($("#uid").value.trim()); });
const asked = new URLSearchParams(location.search).get("uid");
if (asked) { $("#uid").value = asked; lookUp(asked); }
refreshAll();
setInterval(refreshAll, 5000);
