-- wrk script for bench/intake.py: POST one JSON body per request, each with its own screening id.
--
--   wrk -t 1 -c C -d D -s bench/intake.lua URL -- BODY_FILE TOKEN PREFIX
--
-- BODY_FILE holds the body with the placeholder __SCREENING_ID__ where the screening id goes; TOKEN is sent
-- as `Authorization: Bearer TOKEN`; PREFIX starts every screening id, PREFIX-<thread>-<counter>-<random>.
-- Each connection sends its next request as soon as the previous answer arrives. done() prints one line
-- `WRK_RESULT {json}` for bench/intake.py.

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
   math.randomseed(os.time() * 1000 + thread_number)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Accept"] = "application/json"
   wrk.headers["Authorization"] = "Bearer " .. args[2]
end

function request()
   counter = counter + 1
   local id = string.format("%s-%d-%d-%04x", prefix, thread_number, counter, math.random(0, 65535))
   return wrk.format(nil, nil, nil, string.gsub(template, "__SCREENING_ID__", id, 1))
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok_2xx = ok_2xx + 1
   end
end

function done(summary, latency, requests)
   local ok = 0
   for _, thread in ipairs(threads) do
      ok = ok + (thread:get("ok_2xx") or 0)
   end
   local errors = summary.errors
   io.write(string.format(
      'WRK_RESULT {"seconds":%f,"requests":%d,"ok_2xx":%d,"socket_errors":%d,"p50_ms":%f,"p99_ms":%f}\n',
      summary.duration / 1e6, summary.requests, ok,
      errors.connect + errors.read + errors.write + errors.timeout,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000
   ))
end
