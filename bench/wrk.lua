-- Request shape from the environment; with WRK_COUNT_STATUSES=1 every status is tallied and
-- printed (used by --quick, which checks that every request got the expected status).
wrk.method = os.getenv("WRK_METHOD") or "GET"
local auth = os.getenv("WRK_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
local size = tonumber(os.getenv("WRK_BODY_BYTES") or "0")
if size > 0 then
  wrk.body = string.rep("x", size)
  wrk.headers["Content-Type"] = "application/octet-stream"
end

local counting = os.getenv("WRK_COUNT_STATUSES") == "1"
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

if counting then
  function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  if not counting then
    return
  end
  local total = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for status, count in pairs(counts) do
      total[status] = (total[status] or 0) + count
    end
  end
  io.write("STATUSES")
  for status, count in pairs(total) do
    io.write(" " .. status .. "=" .. count)
  end
  io.write("\n")
end
