-- GET a path with a session cookie, cycling through a list of cookies (one per line) so the
-- load spreads over many sessions. Env: BENCH_COOKIES (file), BENCH_COOKIE_NAME, BENCH_PATH.
local cookies = {}
local name = os.getenv("BENCH_COOKIE_NAME")
local path = os.getenv("BENCH_PATH") or "/auth/me"
for line in io.lines(os.getenv("BENCH_COOKIES")) do
  cookies[#cookies + 1] = line
end
local i = 0

function setup(thread)
  thread:set("offset", math.random(1, #cookies))
end

function init(args)
  i = offset or 0
end

function request()
  i = (i % #cookies) + 1
  return wrk.format("GET", path, { ["Cookie"] = name .. "=" .. cookies[i] })
end
