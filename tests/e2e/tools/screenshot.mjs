// Takes the README's picture of the browser example: acs-emulator (12-second tokens, so the
// SDK refreshes every ~6 s), tokenvend with a local account and CORS for the page, serve.mjs and
// headless Chromium; signs in, waits for a few refreshes in the page's log, and writes a PNG.
//   node tools/screenshot.mjs [OUT.png]      (default: docs/web-example.png in the repo)
// Needs the build (TV_BUILD, default build) and Debian's chromium, like web-example.test.mjs.

import { join, resolve } from "node:path";
import { REPO_ROOT, startEmulator } from "../lib/emulator.mjs";
import { freePorts, pollUntil, startService } from "../lib/service.mjs";
import { ensureBundle, launchChromium, requireChromium, startExampleServer } from "../lib/web.mjs";

const out = resolve(process.argv[2] || join(REPO_ROOT, "docs", "web-example.png"));
const REFRESHES = 3;

requireChromium();
ensureBundle();
const emu = await startEmulator(["--token-ttl-seconds", "12"]);
let svc;
let web;
let browser;
try {
  const [port] = await freePorts(1);
  svc = await startService({ emu, localAccounts: true, env: { TOKENVEND_CORS_ORIGINS: `http://127.0.0.1:${port}` } });
  await svc.addAccount("demo", "demo-password");
  web = await startExampleServer(svc.publicUrl, port);
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 960, height: 740 }, colorScheme: "light" });
  const page = await context.newPage();
  await page.goto(web.url);
  await page.fill("#username", "demo");
  await page.fill("#password", "demo-password");
  await page.click("#sign-in");
  const done = await pollUntil(async () => (await page.locator("#log li").count()) >= REFRESHES + 1,
    { deadlineMs: 60_000, intervalMs: 250 });
  if (!done) throw new Error(`fewer than ${REFRESHES} refreshes in the page's log within 60 s`);
  await page.screenshot({ path: out, fullPage: true });
  process.stdout.write(`wrote ${out}\n`);
} finally {
  await browser?.close();
  await web?.stop();
  await svc?.cleanup();
  await emu.stop();
}
