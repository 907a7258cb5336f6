-- Creates pods straight on a kubesim, each under a name of its own: the
-- cluster's own create rate, which dispatch is measured against.
-- args: POD_FILE (metadata.name is @NAME@)
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local pod, n = nil, 0
local headers = {["Content-Type"] = "application/json"}

function init(args)
  local f = assert(io.open(args[1], "rb"))
  pod = f:read("*a")
  f:close()
end

function request()
  n = n + 1
  local body = pod:gsub("@NAME@", string.format("bench-%d-%d", id, n), 1)
  return wrk.format("POST", "/api/v1/namespaces/spark-jobs/pods", headers, body)
end

function response(status)
  count_status(status)
end
