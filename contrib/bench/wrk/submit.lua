-- POSTs one job body, each request with an Idempotency-Key of its own.
-- args: BODY_FILE RUN_TAG [BEARER_TOKEN]
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local body, tag, n = nil, nil, 0
local headers = {["Content-Type"] = "application/json"}

function init(args)
  local f = assert(io.open(args[1], "rb"))
  body = f:read("*a")
  f:close()
  tag = args[2]
  if args[3] and args[3] ~= "" then headers["Authorization"] = "Bearer " .. args[3] end
end

function request()
  n = n + 1
  headers["Idempotency-Key"] = string.format("%s-%d-%d", tag, id, n)
  return wrk.format("POST", "/api/v1/jobs", headers, body)
end

function response(status)
  count_status(status)
end
