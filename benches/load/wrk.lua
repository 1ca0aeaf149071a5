-- wrk script for benches/load.py. Arguments after `--`: the mode (`get`,
-- `login BODY`, `refresh TOKENS_FILE`, `tokens TOKENS_FILE`), then the run's
-- label. `tokens` sends GETs, each with the next access token of the file as
-- its bearer (each thread starts at its own place in the list). Prints one JSON
-- line per run: requests, duration, p50/p99 latency, and every error
-- (non-2xx answers included, so a run of refused requests cannot pass for fast).

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  mode = args[1] or "get"
  if mode == "login" then
    wrk.method = "POST"
    wrk.body = args[2]
    wrk.headers["Content-Type"] = "application/json"
  elseif mode == "refresh" then
    -- One connection per thread, so each response answers this thread's
    -- last request: the rotated token replaces the one just spent.
    local tokens = {}
    for line in io.lines(args[2]) do
      tokens[#tokens + 1] = line
    end
    token = tokens[id + 1]
  elseif mode == "tokens" then
    bearers = {}
    for line in io.lines(args[2]) do
      bearers[#bearers + 1] = "Bearer " .. line
    end
    next_bearer = (id * 7919) % #bearers
  end
end

function request()
  if mode == "tokens" then
    next_bearer = next_bearer % #bearers + 1
    return wrk.format("GET", nil, { Authorization = bearers[next_bearer] })
  end
  if mode == "refresh" then
    local body = '{"refresh_token":"' .. token .. '"}'
    return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
  end
  return wrk.request()
end

function response(status, headers, body)
  if mode == "refresh" and status == 200 then
    token = string.match(body, '"refresh_token":"([^"]+)"')
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
