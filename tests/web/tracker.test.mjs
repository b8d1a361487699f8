// The web tracker (clients/js/portrait.js) in headless Chromium, on a page of another
// origin, against a real portrait with CORS: events tracked before and after identify()
// arrive once each, also when the first attempts fail (the tracker retries them with the
// same ids), and the user's profile then holds the device's events too.
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { test } from "node:test";
import { launch, recordedPage, root, screenshotPath, startServer, waitFor } from "./harness.mjs";

// The shop's own web server: a page and the tracker module, on another port than portrait.
function startShop() {
  const tracker = fs.readFileSync(path.join(root, "clients/js/portrait.js"));
  const server = http.createServer((req, res) => {
    if (req.url === "/js/portrait.js") {
      res.writeHead(200, { "Content-Type": "text/javascript" });
      res.end(tracker);
    } else {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end('<!doctype html><html><head><link rel="icon" href="data:,"></head><body><h1>shop</h1></body></html>');
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${server.address().port}` })));
}

async function metric(url, name) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} ([0-9]+)$`, "m"));
  return m ? Number(m[1]) : 0;
}

test("events tracked before and after identify arrive once each, through failures and retries", async () => {
  const shop = await startShop();
  const portrait = await startServer([["[server]", `[server]\ncors_origins = ["${shop.url}"]`]]);
  const browser = await launch();
  try {
    const { page, problems } = await recordedPage(browser);
    // The first two POSTs to portrait fail as a dropped network would.
    let failing = 2, posts = 0;
    await page.setRequestInterception(true);
    page.on("request", (req) => {
      if (req.url().startsWith(`${portrait.url}/v1/events`) && req.method() === "POST") {
        posts++;
        if (failing > 0) { failing--; req.abort("connectionreset"); return; }
      }
      req.continue();
    });
    await page.goto(`${shop.url}/`);
    const device = await page.evaluate(async (endpoint) => {
      const { createTracker } = await import("/js/portrait.js");
      const t = createTracker({ endpoint, batchSize: 50, flushInterval: 200, maxBackoff: 1000, channel: "ads" });
      for (let i = 0; i < 3; i++) t.track("click", { item_id: 500 + i, category_id: 7 });
      t.identify("web-user-1");
      t.track("click", { item_id: 600, category_id: 7 });
      t.track("buy", { item_id: 600, category_id: 7 });
      window.tracker = t;
      return t.deviceId;
    }, portrait.url);
    await waitFor("the queue to drain", () => page.evaluate(() => window.tracker.queued === 0), 30000);
    assert.ok(posts >= 3, `the failed POSTs were retried (${posts} POSTs)`);
    assert.equal(await metric(portrait.url, "portrait_events_accepted_total"), 5);

    // Sent again by hand: the same ids, counted as repeats, not events.
    const again = await page.evaluate(() => { window.tracker.track("click", { item_id: 700, category_id: 7 }, { id: "fixed-id-1" });
                                              window.tracker.track("click", { item_id: 700, category_id: 7 }, { id: "fixed-id-1" });
                                              return window.tracker.flush(); });
    void again;
    await waitFor("the repeat", async () => (await metric(portrait.url, "portrait_events_duplicates_total")) === 1);
    assert.equal(await metric(portrait.url, "portrait_events_accepted_total"), 6);

    // The person: the device's clicks before login and the user's after, one profile.
    const profile = await waitFor("the user's profile", async () => {
      const r = await fetch(`${portrait.url}/v1/profiles/web-user-1`);
      const p = r.ok ? await r.json() : null;
      return p && p.tags.clicks?.value.length === 5 ? p : null;
    });
    assert.deepEqual(profile.devices, [device]);
    assert.deepEqual(profile.tags.clicks.value.map((c) => c.item_id).sort(), [500, 501, 502, 600, 700]);
    assert.equal(profile.tags.purchases.value, 1);
    const byDevice = await (await fetch(`${portrait.url}/v1/profiles/${device}`)).json();
    assert.equal(byDevice.uid, "web-user-1");
    assert.equal(byDevice.resolved_from, device);

    // The queue survives a reload of the page, bounded, with the same device id.
    const after = await page.evaluate(async (endpoint) => {
      const { createTracker } = await import("/js/portrait.js");
      const t = createTracker({ endpoint, maxQueue: 3, flushInterval: 60000, batchSize: 100 });
      for (let i = 0; i < 5; i++) t.track("click", { item_id: 800 + i, category_id: 7 });
      return { device: t.deviceId, queued: t.queued };
    }, portrait.url);
    assert.deepEqual(after, { device, queued: 3 });
    await page.screenshot({ path: screenshotPath("tracker-page.png") });
    assert.deepEqual(problems.filter((p) => !p.includes("connectionreset") && !p.includes("ERR_CONNECTION_RESET")), [],
                     "the browser console is clean");
  } finally {
    await browser.close();
    await portrait.stop();
    shop.server.close();
  }
});
