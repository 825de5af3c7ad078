-- POST /auth/logout, each request with a different session (from BENCH_COOKIES), each thread
-- on its own slice, so every logout ends a live session.
local cookies = {}
local name = os.getenv("BENCH_COOKIE_NAME")
for line in io.lines(os.getenv("BENCH_COOKIES")) do
  cookies[#cookies + 1] = line
end
local threads = 0

function setup(thread)
  thread:set("slice", threads)
  threads = threads + 1
end

local i = 0
local step = 1

function init(args)
  i = slice or 0
  step = tonumber(os.getenv("BENCH_THREADS") or "2")
end

function request()
  i = i + step
  local c = cookies[((i - 1) % #cookies) + 1]
  return wrk.format("POST", "/auth/logout", { ["Cookie"] = name .. "=" .. c })
end
