-- pool.lua - wrk script of the Veil benchmark: replays the request pool that
-- bench/mix.py wrote (path in the environment variable BENCH_POOL), the same
-- bytes to nginx and to veil-collector.
--
-- Requests go out in pool order; lap k of the pool sends variant k mod n of
-- a request that has n variants (tail User-Agents, see mix.py). A run starts
-- at request BENCH_START (where the previous run against the same server
-- stopped); with several wrk threads each thread starts at its own offset
-- from there. At the end
-- one line "BENCH_RESULT {json}" gives the counts and latency percentiles
-- (microseconds) for bench/bench.py.

local pool = {}      -- pool[i] = request string, or a table of variants
local npool = 0
local pos = 0
local lap = 0

local threads = {}
local thread_count = 0

function setup(thread)
   thread:set("thread_id", thread_count)
   thread_count = thread_count + 1
   table.insert(threads, thread)
end

local function load(path)
   local f = assert(io.open(path, "rb"))
   local data = f:read("*a")
   f:close()
   local at = 1
   local len = #data
   while at <= len do
      local nl = string.find(data, "\n", at, true)
      local header = string.sub(data, at, nl - 1)
      at = nl + 1
      local sizes = {}
      for n in string.gmatch(header, "%d+") do
         sizes[#sizes + 1] = tonumber(n)
      end
      local count = sizes[1]
      local entry
      if count == 1 then
         entry = string.sub(data, at, at + sizes[2] - 1)
         at = at + sizes[2]
      else
         entry = {}
         for k = 1, count do
            entry[k] = string.sub(data, at, at + sizes[k + 1] - 1)
            at = at + sizes[k + 1]
         end
      end
      npool = npool + 1
      pool[npool] = entry
   end
end

function init(args)
   load(assert(os.getenv("BENCH_POOL"), "BENCH_POOL is not set"))
   local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1")
   -- BENCH_START: requests this server has had from earlier wrk runs, so
   -- that a series of runs walks on through the pool and its laps.
   local start = tonumber(os.getenv("BENCH_START") or "0") +
      math.floor(npool * (thread_id or 0) / nthreads)
   lap = math.floor(start / npool)
   pos = start % npool
end

function request()
   pos = pos + 1
   if pos > npool then
      pos = 1
      lap = lap + 1
   end
   local entry = pool[pos]
   if type(entry) == "string" then
      return entry
   end
   return entry[(lap % #entry) + 1]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,' ..
      '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read,
      e.write, e.timeout, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
end
