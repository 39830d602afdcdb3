// `make bench` helper: a throw-away PostgreSQL 15 cluster (tests/e2e/lib/pg.mjs, the e2e
// suites' harness) for the PostgreSQL hit row. Prints the application URI on the first line of
// stdout, then keeps the cluster until stdin closes or a SIGTERM/SIGINT arrives, and removes it.
// Usage: node scripts/bench/pg.mjs </some/pipe
import { startPostgres } from "../../tests/e2e/lib/pg.mjs";

let pg;
try {
  pg = await startPostgres();
} catch (err) {
  console.error(`bench: PostgreSQL did not start: ${err.message}`);
  process.exit(1);
}
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await pg.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
console.log(pg.uri);
