-- wrk script: GET /v1/profiles/{uid} of random users u0 .. u(USERS-1) over keep-alive.
--   USERS=2000 wrk -t2 -c16 -d5s --latency -s bench/wrk/read_profiles.lua http://127.0.0.1:8080
local users = tonumber(os.getenv("USERS") or "2000")
local token = os.getenv("PORTRAIT_TOKEN")

function init(args)
  math.randomseed(os.time())
  if token then wrk.headers["Authorization"] = "Bearer " .. token end
end

function request()
  return wrk.format("GET", "/v1/profiles/u" .. (math.random(users) - 1))
end
