// Shared helpers of the reliability scripts (tests/reliability/*.mjs): command-line options, the
// machine line, percentiles, and writing a markdown section to --out. Each script is both a
// command (the long run, `make reliability`) and a module whose run() the short test
// (reliability.test.mjs, part of make test) calls with small numbers.

import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname } from "node:path";

// --name value and --flag pairs into an object; numbers stay strings (the caller converts).
export function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) continue;
    const key = a.slice(2);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) out[key] = true;
    else {
      out[key] = next;
      i++;
    }
  }
  return out;
}

export function machine() {
  let kernel = "";
  try {
    kernel = execFileSync("uname", ["-srm"], { encoding: "utf8" }).trim();
  } catch {
    kernel = process.platform;
  }
  const gib = Math.round(totalmem() / 2 ** 30);
  return `${cpus().length} cores (${cpus()[0]?.model?.trim() || "?"}), ${gib} GiB, ${kernel}`;
}

export function nowUtc() {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

// The p-th percentile (0..100) of numbers, nearest rank; NaN for none.
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1];
}

export function writeOut(path, text) {
  if (!path) return;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

// The header every section starts with: what ran, when, where.
export function sectionHead(title, command, started) {
  return `## ${title}\n\n- command: \`${command}\`\n- date: ${started}\n- machine: ${machine()}\n\n`;
}

// Counts into a markdown table of name | count.
export function countTable(head, counts) {
  const rows = Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : 1));
  return `| ${head} | count |\n| --- | --- |\n${rows.map(([k, v]) => `| ${k} | ${v} |`).join("\n")}\n`;
}
