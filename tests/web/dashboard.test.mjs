// The dashboard in headless Chromium against a real server that was given events: the
// channel chart's bars, a looked-up profile's tags and segments, the failed events and the
// pipeline cards are rendered from the API; screenshots are kept as test output; the
// browser console stays clean.
import assert from "node:assert/strict";
import { test } from "node:test";
import { launch, post, recordedPage, screenshotPath, startServer, waitFor } from "./harness.mjs";

test("the dashboard shows the pipeline, the channels, a profile and the failures", async () => {
  const server = await startServer();
  const browser = await launch();
  try {
    const hour = Date.now() - 60_000;
    // 4 new users from ads, 2 from search; each clicks category 7 once or more.
    const events = [];
    for (let u = 0; u < 6; u++) {
      const channel = u < 4 ? "ads" : "search";
      for (let i = 0; i <= u % 3; i++) {
        events.push({ uid: `web${u}`, type: "click", ts: hour + u * 10 + i, channel,
                      props: { item_id: 100 + u * 10 + i, category_id: 7 } });
      }
    }
    events.push({ uid: "web0", type: "buy", ts: hour + 500, channel: "ads", props: { item_id: 100, category_id: 7 } });
    let r = await post(`${server.url}/v1/events`, JSON.stringify(events), { "Content-Type": "application/json" });
    assert.equal(r.status, 200, r.body);
    r = await post(`${server.url}/v1/events`, JSON.stringify({ uid: "bad", type: "click", ts: hour, props: { item_id: "x" } }));
    assert.equal(r.status, 400, r.body);
    await waitFor("the profiles", async () => {
      const p = await (await fetch(`${server.url}/v1/profiles/web5`)).json().catch(() => ({}));
      return p.tags?.clicks?.value?.length === 3;
    });

    const { page, problems } = await recordedPage(browser);
    await page.setViewport({ width: 1280, height: 1100 });
    await page.goto(`${server.url}/`, { waitUntil: "networkidle0" });

    // The chart: one bar group per channel, the bars' values are the new users per hour.
    await page.waitForSelector('#chart .channel[data-channel="ads"] rect.bar.realtime');
    const bars = await page.$$eval("#chart .channel", (cs) =>
      Object.fromEntries(cs.map((c) => [c.dataset.channel,
        [...c.querySelectorAll("rect.bar:not(.outline)")].reduce((n, b) => n + Number(b.dataset.value), 0)])));
    assert.deepEqual(bars, { ads: 4, search: 2 });

    // The pipeline: the rejected event by reason, and the accepted count in the cards.
    await page.waitForFunction(() => document.querySelector("#rejections tbody")?.textContent.includes("wrong_type"));
    await page.waitForFunction(() => document.querySelector("#failed tbody")?.textContent.includes("item_id"));
    const lag = await page.$eval("#lag", (e) => e.textContent);
    assert.match(lag, /^[0-9]+$/);
    const snapshots = await page.$eval("#snapshot-log tbody", (e) => e.textContent);
    assert.match(snapshots, /no snapshot yet/);

    // A profile lookup: its tags, its segments.
    await page.type("#uid", "web0");
    await page.click("#profile-form button");
    await page.waitForSelector('#profile-tags tr[data-tag="clicks"]');
    const tags = await page.$$eval("#profile-tags tbody tr", (rows) => Object.fromEntries(rows.map((r) => [r.dataset.tag, r.children[1].textContent])));
    assert.deepEqual(Object.keys(tags).sort(), ["category_prefs", "clicks", "last_purchase_at", "last_seen", "purchases"]);
    assert.match(tags.clicks, /"item_id":100/);
    assert.equal(tags.purchases, "1");
    const segments = await page.$eval("#profile-segments", (e) => e.textContent);
    assert.match(segments, /buyers/);
    await page.screenshot({ path: screenshotPath("dashboard.png"), fullPage: true });

    // An unknown user says so instead of failing.
    await page.$eval("#uid", (e) => { e.value = ""; });
    await page.type("#uid", "nobody");
    await page.click("#profile-form button");
    await page.waitForFunction(() => document.querySelector("#profile-out")?.textContent.includes("no profile for nobody"));
    // The 404 of that lookup is the only failed request the console may show.
    const unexpected = problems.filter((p) => !p.includes("/v1/profiles/nobody") && !p.includes("404"));
    assert.deepEqual(unexpected, [], "the browser console is clean");
  } finally {
    await browser.close();
    await server.stop();
  }
});

test("with tokens the dashboard asks for one and then reads with it", async () => {
  const server = await startServer([["[server]", '[server]\ntokens = { ops = { token = "s3cret-read-token", scopes = ["read", "admin"] } }']]);
  const browser = await launch();
  try {
    const { page, problems } = await recordedPage(browser);
    await page.goto(`${server.url}/`, { waitUntil: "networkidle0" });
    await page.waitForFunction(() => document.querySelector("#status")?.classList.contains("error"));
    assert.match(await page.$eval("#status", (e) => e.textContent), /401|token/i);
    await page.type("#token", "s3cret-read-token");
    await page.click("#token-form button");
    await page.waitForFunction(() => /updated/.test(document.querySelector("#status")?.textContent || ""));
    await page.screenshot({ path: screenshotPath("dashboard-token.png") });
    // Only the 401s from before the token may show.
    assert.deepEqual(problems.filter((p) => !p.includes("401")), []);
  } finally {
    await browser.close();
    await server.stop();
  }
});
