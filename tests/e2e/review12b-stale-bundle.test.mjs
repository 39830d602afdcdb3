// Review of issue 12 (examples/web): the browser test must drive the page as its sources are now.
//
// tests/e2e/lib/web.mjs ensureBundle() builds examples/web/dist/app.js only when the file is
// missing. dist/ is ignored by git, so on any checkout that ran the test (or `make run`) once,
// an edit to examples/web/src/*.mjs is never bundled: web-example.test.mjs then passes against
// the old page, and a page broken on purpose (or by accident) is not caught. The same holds for
// node_modules, installed only when missing, never when package-lock.json changed.
//
// This runs ensureBundle() on a copy of examples/web (with tests/e2e/lib beside it, so its
// REPO_ROOT is the copy; node_modules linked, not copied), so the real tree and a browser test
// running at the same time are not touched: a first call builds, then a source edit, then a second
// call must bundle that edit.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { REPO_ROOT } from "./lib/emulator.mjs";

const WEB = join(REPO_ROOT, "examples", "web");
const skip = spawnSync("npm", ["--version"]).status === 0 ? false : "npm is not installed";

describe("review12b: the browser test bundles the page's current sources", { skip }, () => {
  const tmp = mkdtempSync(join(tmpdir(), "review12b-bundle-"));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  const ensureBundle = () => {
    const r = spawnSync(process.execPath, ["--input-type=module", "-e",
      `import { ensureBundle } from ${JSON.stringify(join(tmp, "tests/e2e/lib/web.mjs"))}; ensureBundle();`],
    { encoding: "utf8", timeout: 600_000 });
    assert.equal(r.status, 0, `ensureBundle: ${r.stdout}${r.stderr}`);
  };

  test("a source edit after a first build reaches dist/app.js", () => {
    mkdirSync(join(tmp, "tests/e2e/lib"), { recursive: true });
    for (const f of ["web.mjs", "emulator.mjs"]) copyFileSync(join(REPO_ROOT, "tests/e2e/lib", f), join(tmp, "tests/e2e/lib", f));
    const web = join(tmp, "examples/web");
    cpSync(WEB, web, { recursive: true, filter: (p) => !/[/\\](node_modules|dist)([/\\]|$)/.test(p.slice(WEB.length)) });
    if (existsSync(join(WEB, "node_modules", ".package-lock.json"))) symlinkSync(join(WEB, "node_modules"), join(web, "node_modules"));

    ensureBundle();
    const bundle = join(web, "dist", "app.js");
    assert.ok(existsSync(bundle), "the first call builds the bundle");
    const marker = "review12b: the page as edited after the first build";
    assert.ok(!readFileSync(bundle, "utf8").includes(marker));

    // The edit a developer (or a fixer) makes; the old bundle is older than it.
    const src = join(web, "src", "app.mjs");
    writeFileSync(src, `${readFileSync(src, "utf8")}\ndocument.title = ${JSON.stringify(marker)};\n`);
    const old = new Date(Date.now() - 3600_000);
    utimesSync(bundle, old, old);

    ensureBundle();
    assert.ok(readFileSync(bundle, "utf8").includes(marker),
      "dist/app.js is still the bundle of the old sources: the browser test would drive a page that no longer exists");
  });
});
