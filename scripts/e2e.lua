-- wrk script of scripts/e2e.sh: GET $E2E_PATH with "Authorization: Bearer
-- <token>", the tokens read from the file $E2E_TOKENS (one a line) and sent
-- round robin. Every request is formatted once, in init(), so that wrk
-- spends no Lua time per request. done() prints one line:
--   E2E requests=N rps=R p50_us=.. p99_us=.. non2xx=N socket_errors=N

local requests_ = {}
local next_ = 1

function init(args)
  local path = os.getenv("E2E_PATH") or "/hello"
  local name = os.getenv("E2E_TOKENS")
  assert(name, "E2E_TOKENS unset")
  local file = assert(io.open(name, "r"))
  for token in file:lines() do
    if token ~= "" then
      requests_[#requests_ + 1] =
        wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
    end
  end
  file:close()
  assert(#requests_ > 0, "no tokens in " .. name)
end

function request()
  local r = requests_[next_]
  next_ = next_ % #requests_ + 1
  return r
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    "E2E requests=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
