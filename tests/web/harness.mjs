// What the browser tests share: a real `portrait serve` on the example config (started and
// stopped here), headless Chromium (Debian's `chromium`, driven by puppeteer-core), and a
// page recorder that fails a test on any console error or uncaught exception.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";

export const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
export const binary = process.env.PORTRAIT_BINARY || path.join(root, "build/release/portrait");
export const outDir = process.env.PORTRAIT_TEST_OUT || path.join(root, "build/release/web-test-output");

export async function startServer(replacements = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "portrait-web-"));
  let text = fs.readFileSync(path.join(root, "examples/portrait.toml"), "utf8");
  for (const [from, to] of replacements) {
    if (!text.includes(from)) throw new Error(`examples/portrait.toml has no "${from}"`);
    text = text.replace(from, to);
  }
  const config = path.join(dir, "portrait.toml");
  fs.writeFileSync(config, text);
  const child = spawn(binary, ["serve", "--config", config, "--listen", "127.0.0.1:0", "--data-dir", path.join(dir, "data")],
                      { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`portrait did not start:\n${output}`)), 30000);
    const onData = (d) => {
      output += d;
      const m = output.match(/listening on (?:http:\/\/)?([0-9.]+:[0-9]+)/);
      if (m) { clearTimeout(timer); resolve(`http://${m[1]}`); }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`portrait exited (${code}):\n${output}`)); });
  });
  return {
    url, dir,
    output: () => output,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.on("exit", r)));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function post(url, body, headers = {}) {
  const r = await fetch(url, { method: "POST", body, headers });
  return { status: r.status, body: await r.text() };
}

export async function waitFor(what, fn, ms = 20000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

export async function launch() {
  return puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // No background traffic: the machines this runs on may have no route out.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

// A page whose console errors, warnings and uncaught exceptions are collected.
export async function recordedPage(browser) {
  const page = await browser.newPage();
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warn") problems.push(`console.${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`uncaught: ${e.message}`));
  page.on("requestfailed", (r) => { if (!r.failure()?.errorText.includes("ERR_ABORTED")) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`); });
  return { page, problems };
}

export function screenshotPath(name) {
  fs.mkdirSync(outDir, { recursive: true });
  return path.join(outDir, name);
}
