-- wrk script for bench/intake.py: POST one JSON body per request, each with its own screening id.
--
--   [INTAKE_THINK_MS=M] wrk -t T -c C -d D -s bench/intake.lua URL -- BODY_FILE TOKEN PREFIX
--
-- BODY_FILE holds the request body with the placeholder __SCREENING_ID__ where the screening id goes;
-- TOKEN is sent as `Authorization: Bearer TOKEN` (empty: no Authorization header); PREFIX starts every
-- screening id (unique per run and concurrency level). An id is PREFIX-<thread>-<counter>-<random>,
-- at most 64 characters of [A-Za-z0-9._-]. With INTAKE_THINK_MS set (in the environment, because wrk
-- decides whether the script has a delay() before any thread starts), each connection waits a random
-- time, exponentially distributed with mean M ms and capped at 1.5 s (gunicorn closes a keep-alive
-- connection idle for 2 s), before each request, which paces the load below what the connections could
-- send; without it, delay() is not defined at all and each connection sends its
-- next request as soon as the previous answer arrives. done() prints one line `WRK_RESULT {json}` for
-- bench/intake.py.

local threads = {}

function setup(thread)
   thread:set("thread_number", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   local file = assert(io.open(args[1], "rb"))
   template = file:read("*a")
   file:close()
   prefix = args[3]
   counter = 0
   ok_2xx = 0
   non_2xx = 0
   statuses = ""        -- "code:count,..." of the non-2xx answers, for the report
   status_counts = {}
   math.randomseed(os.time() * 1000 + thread_number)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Accept"] = "application/json"
   if args[2] ~= nil and args[2] ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. args[2]
   end
end

function request()
   counter = counter + 1
   local id = string.format("%s-%d-%d-%04x", prefix, thread_number, counter, math.random(0, 65535))
   local body = string.gsub(template, "__SCREENING_ID__", id, 1)
   return wrk.format(nil, nil, nil, body)
end

local think_ms = tonumber(os.getenv("INTAKE_THINK_MS") or "") or 0
if think_ms > 0 then
   function delay()
      return math.min(1500, math.floor(-think_ms * math.log(1 - math.random()) + 0.5))
   end
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok_2xx = ok_2xx + 1
   else
      non_2xx = non_2xx + 1
      status_counts[status] = (status_counts[status] or 0) + 1
      local parts = {}
      for code, count in pairs(status_counts) do
         table.insert(parts, code .. ":" .. count)
      end
      statuses = table.concat(parts, ",")
   end
end

function done(summary, latency, requests)
   local ok, bad, codes = 0, 0, {}
   for _, thread in ipairs(threads) do
      ok = ok + (thread:get("ok_2xx") or 0)
      bad = bad + (thread:get("non_2xx") or 0)
      local text = thread:get("statuses") or ""
      for code, count in string.gmatch(text, "(%d+):(%d+)") do
         codes[code] = (codes[code] or 0) + tonumber(count)
      end
   end
   local parts = {}
   for code, count in pairs(codes) do
      table.insert(parts, string.format('"%s":%d', code, count))
   end
   local errors = summary.errors
   io.write(string.format(
      'WRK_RESULT {"duration_us":%d,"requests":%d,"ok_2xx":%d,"non_2xx":%d,"statuses":{%s},'
         .. '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,'
         .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.duration, summary.requests, ok, bad, table.concat(parts, ","),
      errors.connect, errors.read, errors.write, errors.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
   ))
end
