#!lua name=portrait_channels
-- The channel figures as Redis functions (features/channels/channel_store.h, the same rule
-- as ApplySighting). Redis function libraries cannot share code, so the two helpers below
-- are copies of the profiles library's (store/redis/portrait.lua).
local function bytes_less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function fmt(n)
  if n == math.floor(n) and math.abs(n) < 9007199254740992 then return string.format('%d', n) end
  return string.format('%.17g', n)
end

-- All keys of
-- a product share the hash tag {product}; B is the key prefix:
--   B..'id'   hash: 'u'..uid | 'd'..device -> ts \31 channel \31 owner (devices only)
--   B..'rt'   hash: hour_ms \31 channel -> real-time new users
--   B..'chs'  set of channels ever counted
--   B..'cal'  hash: hour_ms \31 channel -> calibrated new users (zeros left out)
--   B..'days' hash: day_ms -> summary of the day's calibration
local SEP = '\31'
local HOUR_MS = 3600000

local function earlier(ts, ch, ots, och)
  if ts ~= ots then return ts < ots end
  return bytes_less(ch, och)
end

local function id_get(B, key)
  local v = redis.call('HGET', B .. 'id', key)
  if not v then return nil end
  local a = string.find(v, SEP, 1, true)
  local b = string.find(v, SEP, a + 1, true)
  return {ts = tonumber(string.sub(v, 1, a - 1)), ch = string.sub(v, a + 1, b - 1), owner = string.sub(v, b + 1)}
end

local function id_put(B, key, r)
  redis.call('HSET', B .. 'id', key, fmt(r.ts) .. SEP .. r.ch .. SEP .. r.owner)
end

local function count(B, ts, ch, d)
  local field = fmt(ts - ts % HOUR_MS) .. SEP .. ch
  if redis.call('HINCRBY', B .. 'rt', field, d) == 0 then redis.call('HDEL', B .. 'rt', field) end
  if d > 0 then redis.call('SADD', B .. 'chs', ch) end
end

local function lower_root(B, key, ts, ch)
  local r = id_get(B, key)
  if not r then
    id_put(B, key, {ts = ts, ch = ch, owner = ''})
    count(B, ts, ch, 1)
    return
  end
  if not earlier(ts, ch, r.ts, r.ch) then return end
  count(B, r.ts, r.ch, -1)
  count(B, ts, ch, 1)
  id_put(B, key, {ts = ts, ch = ch, owner = r.owner})
end

local function sight(B, uid, device, ts, ch)
  local dkey = 'd' .. device
  if uid == '' then
    if device == '' then return end
    local d = id_get(B, dkey)
    if d and d.owner ~= '' then
      if earlier(ts, ch, d.ts, d.ch) then id_put(B, dkey, {ts = ts, ch = ch, owner = d.owner}) end
      lower_root(B, 'u' .. d.owner, ts, ch)
      return
    end
    lower_root(B, dkey, ts, ch)
    return
  end
  local ukey = 'u' .. uid
  lower_root(B, ukey, ts, ch)
  if device == '' then return end
  local d = id_get(B, dkey)
  if not d then
    id_put(B, dkey, {ts = ts, ch = ch, owner = uid})
    return
  end
  local nts, nch = d.ts, d.ch
  if earlier(ts, ch, nts, nch) then nts, nch = ts, ch end
  if d.owner == '' then
    count(B, d.ts, d.ch, -1)
    id_put(B, dkey, {ts = nts, ch = nch, owner = uid})
    local u = id_get(B, ukey)
    if earlier(d.ts, d.ch, u.ts, u.ch) then
      count(B, u.ts, u.ch, -1)
      count(B, d.ts, d.ch, 1)
      id_put(B, ukey, {ts = d.ts, ch = d.ch, owner = ''})
    end
    return
  end
  if nts ~= d.ts or nch ~= d.ch then id_put(B, dkey, {ts = nts, ch = nch, owner = d.owner}) end
end

-- portrait_seen(KEYS: B..'id', B..'rt', B..'chs'; ARGV: B, n, then n times uid, device, ts, channel)
local function seen(keys, a)
  local B = a[1]
  local n = tonumber(a[2])
  for i = 0, n - 1 do
    local j = 3 + i * 4
    sight(B, a[j], a[j + 1], tonumber(a[j + 2]), a[j + 3])
  end
  return n
end

-- portrait_calibrate(KEYS: B..'cal', B..'days', B..'chs'; ARGV: B, day_ms, summary, n, then
-- n times hour_ms, channel, count): replaces the calibrated counts of the day.
local function calibrate(keys, a)
  local B, day, summary, n = a[1], tonumber(a[2]), a[3], tonumber(a[4])
  local chs = redis.call('SMEMBERS', B .. 'chs')
  for _, ch in ipairs(chs) do
    for h = 0, 23 do redis.call('HDEL', B .. 'cal', fmt(day + h * HOUR_MS) .. SEP .. ch) end
  end
  for i = 0, n - 1 do
    local j = 5 + i * 3
    local c = tonumber(a[j + 2])
    if c ~= 0 then
      redis.call('HSET', B .. 'cal', fmt(tonumber(a[j])) .. SEP .. a[j + 1], a[j + 2])
      redis.call('SADD', B .. 'chs', a[j + 1])
    end
  end
  redis.call('HSET', B .. 'days', fmt(day), summary)
  return n
end

redis.register_function('portrait_seen', seen)
redis.register_function('portrait_calibrate', calibrate)
