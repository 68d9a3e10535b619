"""The Lua scripts behind the Redis storage: every operation is one script, so it is atomic.

Key layout (``P`` is the key prefix, ``pyrite:ns:`` by default)::

    P names          sorted set  name -> latest expiry of its URIs (ms, Redis clock; +inf = no lease)
    P e:<name>       hash        meta -> JSON list of tags, replica -> "1" for a replica set
    P u:<name>       sorted set  uri -> expiry (ms; +inf = no lease)
    P t:<tag>        set         names having that tag (the yellow-pages index)

Times come from the Redis server (``TIME``), so name servers on hosts whose
clocks disagree still agree on when a lease runs out.  Scripts that write first
drop names whose every URI has expired (``purge``); readers skip expired URIs by
their score, so a lease is gone on time even before anyone writes.  Keys are
computed inside the scripts, which is fine on a standalone Redis or Valkey (and
behind Sentinel) but not on Redis Cluster.
"""

from __future__ import annotations

__all__ = ["REGISTER", "LOOKUP", "SET_META", "REMOVE", "QUERY", "COUNT", "PURGE"]

_READ_ONLY = "#!lua flags=no-writes\n"  # Redis 7+/Valkey: a read-only script, allowed on replicas too

_PROLOGUE = """
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function unindex(name)
  local meta = redis.call('HGET', P .. 'e:' .. name, 'meta')
  if meta then
    for _, tag in ipairs(cjson.decode(meta)) do redis.call('SREM', P .. 't:' .. tag, name) end
  end
end
local function drop(name)
  unindex(name)
  redis.call('DEL', P .. 'e:' .. name, P .. 'u:' .. name)
  redis.call('ZREM', P .. 'names', name)
end
local function purge(now)
  local dead = redis.call('ZRANGEBYSCORE', P .. 'names', '-inf', '(' .. now, 'LIMIT', 0, 1000)
  for _, name in ipairs(dead) do drop(name) end
end
local function live(name, now)
  return redis.call('ZRANGEBYSCORE', P .. 'u:' .. name, now, '+inf')
end
-- drop expired URIs of one name; the name's score becomes its latest expiry (false: nothing left)
local function rescore(name, now)
  local ukey = P .. 'u:' .. name
  redis.call('ZREMRANGEBYSCORE', ukey, '-inf', '(' .. now)
  local top = redis.call('ZRANGE', ukey, -1, -1, 'WITHSCORES')
  if #top == 0 then drop(name); return false end
  redis.call('ZADD', P .. 'names', top[2], name)
  return true
end
local function set_meta(name, metajson)
  unindex(name)
  for _, tag in ipairs(cjson.decode(metajson)) do redis.call('SADD', P .. 't:' .. tag, name) end
  redis.call('HSET', P .. 'e:' .. name, 'meta', metajson)
end
local function present(name, now)
  return redis.call('EXISTS', P .. 'e:' .. name) == 1 and rescore(name, now)
end
"""

# ARGV: prefix, name, uri, metadata JSON ('' keeps a replica set's), safe, ttl ms ('' = none), replica
REGISTER = (
    _PROLOGUE
    + """
local name, uri, meta = ARGV[2], ARGV[3], ARGV[4]
local safe, ttl, replica = ARGV[5] == '1', ARGV[6], ARGV[7] == '1'
local now = now_ms()
purge(now)
local exists = present(name, now)
local joins = exists and replica and redis.call('HGET', P .. 'e:' .. name, 'replica') == '1'
if exists and safe and not joins then return redis.error_reply('TAKEN name is taken') end
if exists and not joins then drop(name) end
local score = '+inf'
if ttl ~= '' then score = now + tonumber(ttl) end
redis.call('ZADD', P .. 'u:' .. name, score, uri)
if not joins then
  redis.call('HSET', P .. 'e:' .. name, 'replica', replica and '1' or '0')
  if meta == '' then meta = '[]' end
end
if meta ~= '' then set_meta(name, meta) end
rescore(name, now)
return 1
"""
)

# ARGV: prefix, name -> {metadata JSON, replica flag, uri...} or nil
LOOKUP = (
    _READ_ONLY
    + _PROLOGUE
    + """
local name = ARGV[2]
local entry = redis.call('HMGET', P .. 'e:' .. name, 'meta', 'replica')
if not entry[1] then return false end
local uris = live(name, now_ms())
if #uris == 0 then return false end
table.insert(uris, 1, entry[2])
table.insert(uris, 1, entry[1])
return uris
"""
)

# ARGV: prefix, name, metadata JSON -> 1, or 0 for an unknown name
SET_META = (
    _PROLOGUE
    + """
local now = now_ms()
purge(now)
if not present(ARGV[2], now) then return 0 end
set_meta(ARGV[2], ARGV[3])
return 1
"""
)

# ARGV: prefix, mode, ...
#   'names', name...                        remove those names
#   'uri', uri, name                         remove one URI of a name (a replica)
#   'prefix', prefix, everything, protected  remove by prefix, refusing one that takes every name
# -> the number removed
REMOVE = (
    _PROLOGUE
    + """
local mode = ARGV[2]
local now = now_ms()
purge(now)
local count = 0
if mode == 'names' then
  for i = 3, #ARGV do
    if present(ARGV[i], now) then drop(ARGV[i]); count = count + 1 end
  end
elseif mode == 'uri' then
  local name = ARGV[4]
  if present(name, now) and redis.call('ZREM', P .. 'u:' .. name, ARGV[3]) == 1 then
    count = 1
    rescore(name, now)
  end
else
  local prefix, everything, protected = ARGV[3], ARGV[4] == '1', ARGV[5]
  local victims, others = {}, 0
  for _, name in ipairs(redis.call('ZRANGEBYSCORE', P .. 'names', now, '+inf')) do
    if name ~= protected and string.sub(name, 1, #protected + 1) ~= protected .. '.' then
      if string.sub(name, 1, #prefix) == prefix then table.insert(victims, name) else others = others + 1 end
    end
  end
  if #victims > 0 and others == 0 and not everything then return redis.error_reply('ALL matches every name') end
  for _, name in ipairs(victims) do drop(name) end
  count = #victims
end
return count
"""
)

# ARGV: prefix, mode ('all' | 'prefix' | 'tags_all' | 'tags_any' | 'scan'), argument(s)
# -> flat list: name, metadata JSON, replica flag, number of URIs, the URIs ... for every live name;
#    'scan' takes a ZSCAN cursor and a name prefix ('' for all), and puts the next cursor
#    first: one bounded step, so a large registry never blocks Redis (a name may come twice)
QUERY = (
    _READ_ONLY
    + _PROLOGUE
    + """
local mode = ARGV[2]
local now = now_ms()
local names
local out = {}
if mode == 'scan' then
  -- one step of a ZSCAN over every name: bounded work per call however large the registry
  local step = redis.call('ZSCAN', P .. 'names', ARGV[3], 'COUNT', 1000)
  table.insert(out, step[1])
  names = {}
  for i = 1, #step[2], 2 do table.insert(names, step[2][i]) end
elseif mode == 'tags_all' or mode == 'tags_any' then
  local keys = {}
  for i = 3, #ARGV do table.insert(keys, P .. 't:' .. ARGV[i]) end
  if mode == 'tags_all' then names = redis.call('SINTER', unpack(keys))
  else names = redis.call('SUNION', unpack(keys)) end
else
  names = redis.call('ZRANGEBYSCORE', P .. 'names', now, '+inf')
end
local prefix = ARGV[3]
if mode == 'scan' then prefix = ARGV[4] or '' end
for _, name in ipairs(names) do
  if (mode ~= 'prefix' and mode ~= 'scan') or string.sub(name, 1, #prefix) == prefix then
    local entry = redis.call('HMGET', P .. 'e:' .. name, 'meta', 'replica')
    if entry[1] then
      local uris = live(name, now)
      if #uris > 0 then
        table.insert(out, name)
        table.insert(out, entry[1])
        table.insert(out, entry[2])
        table.insert(out, #uris)
        for _, uri in ipairs(uris) do table.insert(out, uri) end
      end
    end
  end
end
return out
"""
)

# ARGV: prefix -> the number of live names
COUNT = (
    _READ_ONLY
    + _PROLOGUE
    + """
return redis.call('ZCOUNT', P .. 'names', now_ms(), '+inf')
"""
)

# ARGV: prefix -> 1 (drops names whose every lease ran out)
PURGE = (
    _PROLOGUE
    + """
purge(now_ms())
return 1
"""
)
