-- GET a path with a session cookie, cycling through a list of cookies (one per line) so the
-- load spreads over many sessions. Env: BENCH_COOKIES (file), BENCH_COOKIE_NAME, BENCH_PATH.
--
-- Every request is written once, in init(), and request() only hands the next one out: wrk
-- calls request() for every request it sends, on the same cores as the server under test, and
-- building the request there (wrk.format, the header concatenated) costs the load generator
-- more time per request than some servers spend answering it. wrk's own scripting guide says
-- the same: pre-generate in init(), look up in request().
local cookies = {}
local name = os.getenv("BENCH_COOKIE_NAME")
local path = os.getenv("BENCH_PATH") or "/auth/me"
for line in io.lines(os.getenv("BENCH_COOKIES")) do
  cookies[#cookies + 1] = line
end
local requests = {}
local count = 0
local i = 0

function setup(thread)
  thread:set("offset", math.random(1, #cookies))
end

function init(args)
  for n, cookie in ipairs(cookies) do
    requests[n] = wrk.format("GET", path, { ["Cookie"] = name .. "=" .. cookie })
  end
  count = #requests
  i = offset or 0
end

function request()
  i = i % count + 1
  return requests[i]
end
