#!lua name=portrait_decisions
-- Recent decisions per user as Redis functions (features/decisions/decision_store.h). The
-- keys of a user share the hash tag {uid}: 'r:{uid}:d' (ids by event time) and
-- 'r:{uid}:dj' (id -> json).
-- HMGET of any number of fields: Lua's unpack() takes at most a few thousand values, so
-- the fields go in slices (a copy of the profiles library's;
-- Redis function libraries cannot share code).
local function hmget_all(key, fields)
  local out = {}
  for i = 1, #fields, 4000 do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + 3999, #fields)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end

-- portrait_decide(KEYS: D = zset id by event time, J = hash id -> json; ARGV: keep, keep_ms,
-- then triples at, id, json): records decisions once per id, keeps the newest `keep`.
local function decide(keys, a)
  local D, J, keep, keep_ms = keys[1], keys[2], tonumber(a[1]), a[2]
  for i = 3, #a, 3 do
    if redis.call('HSETNX', J, a[i + 1], a[i + 2]) == 1 then redis.call('ZADD', D, a[i], a[i + 1]) end
  end
  local n = redis.call('ZCARD', D)
  if n > keep then
    local old = redis.call('ZRANGE', D, 0, n - keep - 1)
    redis.call('ZREMRANGEBYRANK', D, 0, n - keep - 1)
    for i = 1, #old, 4000 do redis.call('HDEL', J, unpack(old, i, math.min(i + 3999, #old))) end
  end
  redis.call('PEXPIRE', D, keep_ms)
  redis.call('PEXPIRE', J, keep_ms)
  return n
end

-- portrait_get_decisions(KEYS: D, J; ARGV: limit): the newest decisions' json, newest first.
local function get_decisions(keys, a)
  local ids = redis.call('ZREVRANGE', keys[1], 0, tonumber(a[1]) - 1)
  if #ids == 0 then return {} end
  return hmget_all(keys[2], ids)
end

redis.register_function('portrait_decide', decide)
redis.register_function{function_name = 'portrait_get_decisions', callback = get_decisions, flags = {'no-writes'}}
