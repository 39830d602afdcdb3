-- `make bench` helper: one wrk script for every scenario, driven by environment variables.
--   BENCH_MODE   static  (default) wrk's own fixed request (-H flags, BENCH_METHOD/BENCH_BODY)
--                tokens  GET with "Authorization: Bearer <line>" cycling BENCH_TOKENS (a file)
--                create  PUT BENCH_PATH_PREFIX<run>-<thread>-<n> (a new user id per request)
--   BENCH_LIMIT  stop each thread after this many responses (0: run for wrk's -d)
-- done() prints one line "BENCH key=value ..." with the counts and latency percentiles (ms).
local mode = os.getenv("BENCH_MODE") or "static"
local limit = tonumber(os.getenv("BENCH_LIMIT") or "0")
local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

if os.getenv("BENCH_METHOD") then wrk.method = os.getenv("BENCH_METHOD") end
if os.getenv("BENCH_BODY") then wrk.body = os.getenv("BENCH_BODY") end

local tokens, ntok, idx = {}, 0, 0
local prefix, run, n = "", "", 0

function init(args)
  if mode == "tokens" then
    for line in io.lines(os.getenv("BENCH_TOKENS")) do
      if #line > 0 then
        ntok = ntok + 1
        tokens[ntok] = "Bearer " .. line
      end
    end
    -- Each thread starts at its own share of the users, so with BENCH_LIMIT = users/threads a
    -- warm-up visits every user once.
    idx = math.floor((tid - 1) * ntok / (tonumber(os.getenv("BENCH_THREADS") or "1")))
  elseif mode == "create" then
    prefix = os.getenv("BENCH_PATH_PREFIX")
    run = os.getenv("BENCH_RUN") or tostring(os.time())
  end
end

if mode == "tokens" then
  request = function()
    idx = idx % ntok + 1
    wrk.headers["Authorization"] = tokens[idx]
    return wrk.format(nil, nil, nil, nil)
  end
elseif mode == "create" then
  request = function()
    n = n + 1
    return wrk.format("PUT", prefix .. run .. "-" .. tid .. "-" .. n, nil, nil)
  end
end

local got, bad = 0, 0
if limit > 0 then
  response = function(status, headers, body)
    got = got + 1
    if got >= limit then wrk.thread:stop() end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
    "mean_ms=%.3f err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
