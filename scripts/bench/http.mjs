// `make bench` helper: one small HTTP call without curl (the bench needs only wrk and node).
// Usage: node scripts/bench/http.mjs METHOD URL [BODY]   prints the body; exit 1 unless 2xx.
//        node scripts/bench/http.mjs wait URL [SECONDS]  waits until URL answers 200.
//        node scripts/bench/http.mjs get URL FIELD.PATH  prints one field of a JSON answer.
const [method, url, arg] = process.argv.slice(2);

if (method === "wait") {
  const deadline = Date.now() + 1000 * Number(arg || "10");
  for (;;) {
    try {
      if ((await fetch(url)).status === 200) process.exit(0);
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) process.exit(1);
    await new Promise((r) => setTimeout(r, 100));
  }
}
if (method === "get") {
  let v = await (await fetch(url)).json();
  for (const k of arg.split(".")) v = v?.[k];
  console.log(v ?? "");
  process.exit(0);
}
const res = await fetch(url, { method, body: arg, headers: arg ? { "content-type": "application/json" } : {} });
process.stdout.write(await res.text());
process.exit(res.ok ? 0 : 1);
