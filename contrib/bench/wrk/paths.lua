-- GETs the paths of a file in turn, each thread from its own place.
-- args: PATHS_FILE [BEARER_TOKEN]
dofile(os.getenv("BENCH_WRK_DIR") .. "/common.lua")

local paths, headers, i = {}, {}, 0

function init(args)
  for line in io.lines(args[1]) do table.insert(paths, line) end
  if args[2] and args[2] ~= "" then headers["Authorization"] = "Bearer " .. args[2] end
  i = (id * 7919) % #paths
end

function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], headers)
end

function response(status)
  count_status(status)
end
