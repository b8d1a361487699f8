#!lua name=portrait
-- portrait's fusion operators as Redis functions: the same semantics as src/fusion/fusion.cc,
-- run atomically per user. All keys of a user share the hash tag {uid}:
--   P..'m'         hash: y:<tag> type, u:<tag> updated_at, w:<tag> "ts|src" of the register,
--                  ns:<tag> number was set, rt newest realtime ts, ss snapshot
--   P..'t:'..tag   the value: string | number string | hash (map) | set | zset (list: dedup key -> sort)
--   P..'mw:'..tag  map entries' "ts|src|n" (n: the value is a number made by incr)
--   P..'li:'..tag  list items: dedup key -> "ts|src|json"
--   P..'ids'       zset of exactly-once action ids by ts;  P..'o' hash partition -> applied offset
--   P..'k'         set of the user's value key names (for erasure)
-- Callers declare every key a call may touch (for cluster slot migration); the functions
-- build the names from P. Numbers travel as exact decimal text ('%.17g'); ties compare strings byte-wise (Lua's
-- own '<' follows the server's locale).

local OP_STRING_SET, OP_NUMBER_SET, OP_NUMBER_INCR, OP_NUMBER_MAX, OP_NUMBER_MIN = 1, 2, 3, 4, 5
local OP_MAP_PUT, OP_MAP_INCR, OP_MAP_MERGE, OP_MAP_DEL = 6, 7, 8, 9
local OP_SET_ADD, OP_SET_ADDL, OP_LIST_RPUSH, OP_LIST_RPUSHL, OP_TAG_DEL = 10, 11, 12, 13, 14
local OP_MARK = 0  -- records the offline snapshot loaded ("DATE/VERSION") in 'ss'
local SRC_REALTIME = 2
local ID_WINDOW_MS = 7 * 24 * 3600 * 1000
local MAX_IDS = 100000

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

-- does (ts, src, v) beat (cts, csrc, cv)?
local function wins(ts, src, v, cts, csrc, cv, numeric)
  if ts ~= cts then return ts > cts end
  if src ~= csrc then return src > csrc end
  if numeric then return tonumber(v) > tonumber(cv) end
  return bytes_less(cv, v)
end

local function split3(s)
  local a, b, c = string.match(s, '^([^|]*)|([^|]*)|(.*)$')
  return tonumber(a), tonumber(b), c
end

local function drop_tag(P, tag)
  redis.call('DEL', P .. 't:' .. tag, P .. 'mw:' .. tag, P .. 'li:' .. tag)
  redis.call('HDEL', P .. 'm', 'y:' .. tag, 'u:' .. tag, 'w:' .. tag, 'ns:' .. tag)
end

-- Keeps the newer of the stored and the given snapshot mark, by (date, version).
local function set_mark(P, mark)
  local m = P .. 'm'
  local cur = redis.call('HGET', m, 'ss')
  local d, v = string.match(mark, '^(.*)/(%d+)$')
  if not d then return end
  if cur then
    local cd, cv = string.match(cur, '^(.*)/(%d+)$')
    if cd and (bytes_less(d, cd) or (d == cd and tonumber(v) <= tonumber(cv))) then return end
  end
  redis.call('HSET', m, 'ss', mark)
end

-- Records an exactly-once id; false if it was applied before.
local function record_id(P, id, ts)
  local ids = P .. 'ids'
  if redis.call('ZSCORE', ids, id) then return false end
  redis.call('ZADD', ids, ts, id)
  local n = redis.call('ZCARD', ids)
  if n > MAX_IDS then
    local newest = tonumber(redis.call('ZREVRANGE', ids, 0, 0, 'WITHSCORES')[2])
    redis.call('ZREMRANGEBYSCORE', ids, '-inf', '(' .. fmt(newest - ID_WINDOW_MS))
    local keep = math.floor(MAX_IDS * 9 / 10)
    n = redis.call('ZCARD', ids)
    if n > keep then redis.call('ZPOPMIN', ids, n - keep) end
  end
  return true
end

local function merge_item(P, tag, limit, sort, key, json, its, isrc)
  local z, h = P .. 't:' .. tag, P .. 'li:' .. tag
  local cs = redis.call('ZSCORE', z, key)
  if cs then
    cs = tonumber(cs)
    local cts, csrc, cjson = split3(redis.call('HGET', h, key))
    local better
    if sort ~= cs then better = sort > cs
    elseif its ~= cts then better = its > cts
    elseif isrc ~= csrc then better = isrc > csrc
    else better = bytes_less(cjson, json) end
    if better then
      redis.call('ZADD', z, fmt(sort), key)
      redis.call('HSET', h, key, its .. '|' .. isrc .. '|' .. json)
    end
    return
  end
  local card = 0
  if limit > 0 then
    card = redis.call('ZCARD', z)
    if card >= limit then
      local low = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
      local ls = tonumber(low[2])
      if sort < ls or (sort == ls and bytes_less(key, low[1])) then return end
    end
  end
  redis.call('ZADD', z, fmt(sort), key)
  redis.call('HSET', h, key, its .. '|' .. isrc .. '|' .. json)
  if limit > 0 then
    local over = card + 1 - limit
    if over > 0 then
      local popped = redis.call('ZPOPMIN', z, over)
      for i = 1, #popped, 2 do redis.call('HDEL', h, popped[i]) end
    end
  end
end

-- Fields at a[i]: tag, type, size_limit, ttl_ms, written_ms, operand count n, then the
-- operand (see EncodeOperand in redis_store.cc). A tag with a ttl judges expiry at the
-- write's time (written_ms if the caller gave one, else this server's clock `now`), as
-- fusion::Apply does: an action expired already is dropped (false), a state expired
-- already is dropped before the action applies.
local function apply_one(P, a, i, op, ts, src, now)
  local tag, ttype = a[i], a[i + 1]
  local limit, ttl = tonumber(a[i + 2]), tonumber(a[i + 3])
  local written = tonumber(a[i + 4])
  if written > 0 then now = written end
  local n = tonumber(a[i + 5])
  local x = i + 6  -- first operand field
  local m = P .. 'm'
  local val = P .. 't:' .. tag
  if op == OP_TAG_DEL then
    drop_tag(P, tag)
    return true
  end
  local meta = redis.call('HMGET', m, 'y:' .. tag, 'u:' .. tag)
  local cy, cu = meta[1], meta[2]
  if ttl > 0 then
    if ts + ttl <= now then return false end
    if cu and tonumber(cu) + ttl <= now then
      drop_tag(P, tag)
      cy, cu = false, false
    end
  end
  if cy ~= ttype then
    drop_tag(P, tag)
    redis.call('HSET', m, 'y:' .. tag, ttype)
    cu = false
  end
  -- A tag without its updated_at is new (or was dropped): its key names join the user's
  -- registry once, not with every write.
  local fresh = not cu
  local u = ts
  if cu and tonumber(cu) > ts then u = tonumber(cu) end
  redis.call('HSET', m, 'u:' .. tag, fmt(u))
  if fresh then redis.call('SADD', P .. 'k', val) end
  if op == OP_STRING_SET then
    local text = a[x]
    local w = redis.call('HGET', m, 'w:' .. tag)
    local cts, csrc = 0, 0
    if w then cts, csrc = split3(w .. '|') end
    if fresh or wins(ts, src, text, cts, csrc, redis.call('GET', val) or '', false) then
      redis.call('SET', val, text)
      redis.call('HSET', m, 'w:' .. tag, ts .. '|' .. src)
    end
  elseif op >= OP_NUMBER_SET and op <= OP_NUMBER_MIN then
    local num = tonumber(a[x])
    local cur = tonumber(redis.call('GET', val) or '0')
    if op == OP_NUMBER_SET then
      local w = redis.call('HGET', m, 'w:' .. tag)
      local was_set = redis.call('HGET', m, 'ns:' .. tag)
      local cts, csrc = 0, 0
      if w then cts, csrc = split3(w .. '|') end
      if not was_set or wins(ts, src, num, cts, csrc, cur, true) then
        redis.call('SET', val, fmt(num))
        redis.call('HSET', m, 'w:' .. tag, ts .. '|' .. src, 'ns:' .. tag, '1')
      end
    elseif op == OP_NUMBER_INCR then
      redis.call('SET', val, fmt(cur + num))
    else
      local v = num
      if not fresh then
        if op == OP_NUMBER_MAX then v = math.max(cur, num) else v = math.min(cur, num) end
      end
      redis.call('SET', val, fmt(v))
      redis.call('HSET', m, 'ns:' .. tag, '1')
    end
  elseif op >= OP_MAP_PUT and op <= OP_MAP_DEL then
    local mw = P .. 'mw:' .. tag
    if fresh then redis.call('SADD', P .. 'k', mw) end
    for j = 0, n - 1 do
      local k = a[x + 2 * j]
      local v = a[x + 2 * j + 1]
      local cw = redis.call('HGET', mw, k)
      if op == OP_MAP_DEL then
        redis.call('HDEL', val, k)
        redis.call('HDEL', mw, k)
      elseif op == OP_MAP_INCR then
        local cur = redis.call('HGET', val, k)
        local curn = cur and tonumber(cur) or nil
        local cts = 0
        if cw then cts = split3(cw) end
        redis.call('HSET', val, k, fmt((curn or 0) + tonumber(v)))
        redis.call('HSET', mw, k, math.max(cts, ts) .. '|' .. src .. '|n')
      else
        local put = true
        if cw then
          local cts, csrc = split3(cw)
          put = wins(ts, src, v, cts, csrc, redis.call('HGET', val, k), false)
        end
        if put then
          redis.call('HSET', val, k, v)
          redis.call('HSET', mw, k, ts .. '|' .. src .. '|')
        end
      end
    end
  elseif op == OP_SET_ADD or op == OP_SET_ADDL then
    for j = 0, n - 1 do redis.call('SADD', val, a[x + j]) end
  elseif op == OP_LIST_RPUSH or op == OP_LIST_RPUSHL then
    if fresh then redis.call('SADD', P .. 'k', P .. 'li:' .. tag) end
    for j = 0, n - 1 do
      local b = x + 5 * j
      merge_item(P, tag, limit, tonumber(a[b]), a[b + 1], a[b + 2], tonumber(a[b + 3]), tonumber(a[b + 4]))
    end
  end
  if ttl > 0 then
    local at = fmt(u + ttl)
    redis.call('PEXPIREAT', val, at)
    redis.call('PEXPIREAT', P .. 'mw:' .. tag, at)
    redis.call('PEXPIREAT', P .. 'li:' .. tag, at)
  end
  return true
end

-- portrait_apply(KEYS: the user's keys; ARGV: P, partition, count, then per action:
--   offset, id, op, ts, src, field count, fields...). Skips actions at or below the
-- partition's applied offset (a retried batch) and repeated exactly-once ids.
local function apply(keys, a)
  local P, partition, count = a[1], a[2], tonumber(a[3])
  local o = P .. 'o'
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local applied = tonumber(redis.call('HGET', o, partition) or '-1')
  local newest = applied
  local i = 4
  local done = 0
  local rt_new = nil
  for _ = 1, count do
    local offset, id, op, ts, src, nf = tonumber(a[i]), a[i + 1], tonumber(a[i + 2]), tonumber(a[i + 3]), tonumber(a[i + 4]), tonumber(a[i + 5])
    local first = i + 6
    i = first + nf
    local skip = partition ~= '-1' and offset >= 0 and offset <= applied
    if not skip and id ~= '' and (op == OP_NUMBER_INCR or op == OP_MAP_INCR) then
      skip = not record_id(P, id, ts)
    end
    if not skip and op == OP_MARK then
      set_mark(P, a[first])
      done = done + 1
    elseif not skip and apply_one(P, a, first, op, ts, src, now) then
      if src == SRC_REALTIME and (not rt_new or ts > rt_new) then rt_new = ts end
      done = done + 1
    end
    if offset > newest then newest = offset end
  end
  if rt_new then  -- the newest real-time action's time, once per call
    local rt = tonumber(redis.call('HGET', P .. 'm', 'rt') or '0')
    if rt_new > rt then redis.call('HSET', P .. 'm', 'rt', fmt(rt_new)) end
  end
  if partition ~= '-1' and newest > applied then redis.call('HSET', o, partition, fmt(newest)) end
  return done
end

-- portrait_delete(KEYS: the user's keys; ARGV: P, partition, offset)
local function delete(keys, a)
  local P, partition, offset = a[1], a[2], tonumber(a[3])
  local o = P .. 'o'
  if partition ~= '-1' and offset <= tonumber(redis.call('HGET', o, partition) or '-1') then return 0 end
  local names = redis.call('SMEMBERS', P .. 'k')
  for _, k in ipairs(names) do redis.call('DEL', k) end
  redis.call('DEL', P .. 'k', P .. 'm', P .. 'ids')
  if partition ~= '-1' then redis.call('HSET', o, partition, fmt(offset)) end
  return 1
end

-- portrait_get(KEYS: the user's keys; ARGV: P, then tag, ttl_ms pairs)
--   -> {rt, ss, {tag, type, u, w, ns, value...}...}; tags past their ttl by this server's
--   clock are left out (their keys have expired).
-- HMGET of any number of fields: Lua's unpack() takes at most a few thousand values, so
-- the fields go in slices (a list tag may hold any size_limit the config accepts).
local function hmget_all(key, fields)
  local out = {}
  for i = 1, #fields, 4000 do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + 3999, #fields)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end

local function get(keys, a)
  local P = a[1]
  local m = P .. 'm'
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local out = {redis.call('HGET', m, 'rt') or '0', redis.call('HGET', m, 'ss') or ''}
  for i = 2, #a - 1, 2 do
    local tag, ttl = a[i], tonumber(a[i + 1])
    local u = redis.call('HGET', m, 'u:' .. tag)
    if u and ttl > 0 and tonumber(u) + ttl <= now then u = nil end
    if u then
      local y = redis.call('HGET', m, 'y:' .. tag)
      local val = P .. 't:' .. tag
      local entry = {tag, y, u, redis.call('HGET', m, 'w:' .. tag) or '', redis.call('HGET', m, 'ns:' .. tag) or ''}
      if y == '1' or y == '2' then
        table.insert(entry, redis.call('GET', val) or '')
      elseif y == '3' then
        table.insert(entry, redis.call('HGETALL', val))
        table.insert(entry, redis.call('HGETALL', P .. 'mw:' .. tag))
      elseif y == '4' then
        table.insert(entry, redis.call('SMEMBERS', val))
      elseif y == '5' then
        local z = redis.call('ZRANGE', val, 0, -1, 'WITHSCORES')
        local keys_ = {}
        for j = 1, #z, 2 do table.insert(keys_, z[j]) end
        table.insert(entry, z)
        table.insert(entry, hmget_all(P .. 'li:' .. tag, keys_))
      end
      table.insert(out, entry)
    end
  end
  return out
end

redis.register_function('portrait_apply', apply)
redis.register_function('portrait_delete', delete)
redis.register_function{function_name = 'portrait_get', callback = get, flags = {'no-writes'}}
