// portrait's web tracker: an ES module, no dependencies.
//
//   import { createTracker } from "./portrait.js";
//   const portrait = createTracker({ endpoint: "https://collect.example" });
//   portrait.track("click", { item_id: 111, category_id: 7 });
//   portrait.identify("u42");          // later events carry the uid as well as the device id
//
// Every event gets an id when it is tracked, so a retry is recognised by the server (it
// keeps each id once). Events are batched (`batchSize`, `flushInterval` ms) and POSTed as a
// JSON array to /v1/events; a batch that fails (network, 429, 5xx) stays queued and is
// retried with exponential backoff and jitter; one the server refuses (other 4xx) is
// dropped. The queue survives reloads in localStorage, bounded to `maxQueue` events (the
// oldest go first). When the page is hidden the queue is sent with `fetch(..., {keepalive})`
// (or `navigator.sendBeacon` without a token). The device id is kept in localStorage.

const DEVICE_KEY = "portrait.device_id";
const UID_KEY = "portrait.uid";
const QUEUE_KEY = "portrait.queue";

function newId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
}

function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) };
}

export function createTracker(options = {}) {
  const cfg = {
    endpoint: "",            // "" = the page's own origin
    token: "",               // a write token of [server] tokens, if the server has any
    batchSize: 20,
    flushInterval: 2000,     // ms
    maxQueue: 1000,          // events kept while the server cannot be reached
    maxBackoff: 60000,       // ms
    product: undefined,
    channel: undefined,      // e.g. "ads"; events may also pass their own
    storage: undefined,      // defaults to localStorage (memory when unavailable)
    onError: undefined,      // (error) => void, for logging
    ...options,
  };
  let storage = cfg.storage;
  if (!storage) {
    try { storage = globalThis.localStorage; storage.getItem(DEVICE_KEY); } catch { storage = memoryStorage(); }
  }
  const url = `${cfg.endpoint.replace(/\/$/, "")}/v1/events`;
  let queue = [];
  try { queue = JSON.parse(storage.getItem(QUEUE_KEY) || "[]"); } catch { queue = []; }
  let deviceId = storage.getItem(DEVICE_KEY);
  if (!deviceId) { deviceId = newId(); storage.setItem(DEVICE_KEY, deviceId); }
  let uid = storage.getItem(UID_KEY) || "";
  let timer = null, sending = false, failures = 0, retryAt = 0;

  const save = () => {
    try { storage.setItem(QUEUE_KEY, JSON.stringify(queue)); } catch (e) { cfg.onError?.(e); }
  };
  const schedule = (ms) => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; flush(); }, ms);
  };

  async function flush() {
    if (sending || !queue.length) return;
    if (Date.now() < retryAt) { schedule(retryAt - Date.now()); return; }
    sending = true;
    const batch = queue.slice(0, cfg.batchSize);
    let retry = false;
    try {
      const headers = { "Content-Type": "application/json" };
      if (cfg.token) headers.Authorization = `Bearer ${cfg.token}`;
      const r = await fetch(url, { method: "POST", headers, body: JSON.stringify(batch), mode: "cors" });
      retry = r.status === 429 || r.status >= 500;
      if (!r.ok && !retry) cfg.onError?.(new Error(`portrait: ${r.status} ${await r.text()}`));
    } catch (e) {
      retry = true;  // offline, refused, CORS: keep the events
      cfg.onError?.(e);
    }
    sending = false;
    if (retry) {
      failures += 1;
      const backoff = Math.min(cfg.maxBackoff, 1000 * 2 ** Math.min(failures - 1, 16));
      retryAt = Date.now() + backoff / 2 + Math.random() * (backoff / 2);
      schedule(retryAt - Date.now());
      return;
    }
    failures = 0;
    retryAt = 0;
    const sent = new Set(batch.map((e) => e.id));
    queue = queue.filter((e) => !sent.has(e.id));
    save();
    if (queue.length) schedule(0);
  }

  // The page is going away: hand what is queued to the browser, which sends it even after
  // the page is gone. The queue stays saved until a normal flush confirms it.
  function flushOnHide() {
    if (!queue.length) return;
    const body = JSON.stringify(queue.slice(0, 500));
    if (cfg.token) {
      fetch(url, { method: "POST", keepalive: true, mode: "cors",
                   headers: { "Content-Type": "application/json", Authorization: `Bearer ${cfg.token}` }, body })
        .catch((e) => cfg.onError?.(e));
    } else if (navigator.sendBeacon) {
      navigator.sendBeacon(url, new Blob([body], { type: "text/plain" }));
    }
  }
  if (globalThis.document?.addEventListener) {
    document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden") flushOnHide(); });
    globalThis.addEventListener?.("pagehide", flushOnHide);
  }

  return {
    // Queues one event; `extra` may carry product, channel, ts or id.
    track(type, props = {}, extra = {}) {
      const event = { id: extra.id || newId(), type, ts: extra.ts || Date.now(), device_id: deviceId, props };
      if (uid) event.uid = uid;
      const product = extra.product ?? cfg.product, channel = extra.channel ?? cfg.channel;
      if (product) event.product = product;
      if (channel) event.channel = channel;
      queue.push(event);
      if (queue.length > cfg.maxQueue) queue.splice(0, queue.length - cfg.maxQueue);
      save();
      if (queue.length >= cfg.batchSize) flush(); else schedule(cfg.flushInterval);
      return event.id;
    },
    // The user logged in: later events carry `uid` (with the device id, which links them).
    identify(id) {
      uid = String(id || "");
      if (uid) storage.setItem(UID_KEY, uid); else storage.removeItem(UID_KEY);
    },
    // The user logged out: later events are the device's alone.
    reset() { this.identify(""); },
    flush,
    get deviceId() { return deviceId; },
    get queued() { return queue.length; },
  };
}
