"""The Lua scripts that make each transport operation one atomic step in Redis.

A lease entry (the value in ``_tq.leases``) and a delayed entry (a member of
``_tq.delayed.<queue>``) are both ``cjson`` arrays ``[list key, stored message,
deliveries so far]``; a lease entry adds the index of the fetched queue. Messages go
back to a list with ``put_back``, which remembers how often they were delivered in
``_tq.deliveries`` (by SHA-1 of the message) when that is not zero, because the list
itself holds kombu's plain envelope.

Lease deadlines use the Redis server's clock (``TIME``), so workers on hosts whose
clocks disagree still agree on when a lease has expired.
"""

from __future__ import annotations

from typing import Final

_COMMON: Final = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function put_back(deliveries, key, raw, count, front)
  if count > 0 then
    redis.call('HSET', deliveries, redis.sha1hex(raw), count)
  end
  if front then
    redis.call('RPUSH', key, raw)
  else
    redis.call('LPUSH', key, raw)
  end
end

local function take_lease(leases, deadlines, tag)
  local entry = redis.call('HGET', leases, tag)
  if not entry then
    return nil
  end
  redis.call('HDEL', leases, tag)
  redis.call('ZREM', deadlines, tag)
  return cjson.decode(entry)
end
"""

# KEYS: leases, lease deadlines, deliveries, lease sequence, then per queue its delayed
# set followed by its lists in serving order. ARGV: lease seconds, limit, lists per
# queue, number of queues, most expired leases to restore, then the tags of leases to
# acknowledge first (the worker's finished tasks: one round trip settles and fetches).
# Returns one string per message: tag, delivery count and queue index, each followed by a
# newline, then the stored message (one reply element per message, not four: parsing
# the reply is a good part of a fetch's cost in the worker).
FETCH: Final = (
    _COMMON
    + """
local leases, deadlines, deliveries, sequence = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local seconds, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local per_queue, queues = tonumber(ARGV[3]) + 1, tonumber(ARGV[4])
local t = now()

if #ARGV > 5 then
  local acked = {unpack(ARGV, 6)}
  redis.call('HDEL', leases, unpack(acked))
  redis.call('ZREM', deadlines, unpack(acked))
end

-- A worker that died stops renewing its leases: their messages go back to the front.
for _, tag in ipairs(redis.call('ZRANGEBYSCORE', deadlines, '-inf', t, 'LIMIT', 0, tonumber(ARGV[5]))) do
  local entry = take_lease(leases, deadlines, tag)
  redis.call('ZREM', deadlines, tag)
  if entry then
    put_back(deliveries, entry[1], entry[2], entry[3], true)
  end
end

local out, taken = {}, 0
local counted = redis.call('EXISTS', deliveries) == 1
for q = 0, queues - 1 do
  local delayed = KEYS[5 + q * per_queue]
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', t, 'LIMIT', 0, 1000)) do
    redis.call('ZREM', delayed, member)
    local entry = cjson.decode(member)
    put_back(deliveries, entry[1], entry[2], entry[3], false)
    counted = counted or entry[3] > 0
  end
  for s = 1, per_queue - 1 do
    if taken >= limit then
      return out
    end
    local key = KEYS[5 + q * per_queue + s]
    local raws = redis.call('RPOP', key, limit - taken)
    if raws then
      for _, raw in ipairs(raws) do
        local count = 1
        if counted then
          local sha = redis.sha1hex(raw)
          local seen = redis.call('HGET', deliveries, sha)
          if seen then
            count = tonumber(seen) + 1
            redis.call('HDEL', deliveries, sha)
          end
        end
        local tag = tostring(redis.call('INCR', sequence))
        redis.call('HSET', leases, tag, cjson.encode({key, raw, count, q}))
        redis.call('ZADD', deadlines, t + seconds, tag)
        taken = taken + 1
        out[#out + 1] = tag .. '\\n' .. count .. '\\n' .. q .. '\\n' .. raw
      end
    end
  end
end
return out
"""
)

# KEYS: leases, lease deadlines, deliveries, target (delayed set or dead-letter list).
# ARGV: operation, tag, then for "requeue" the due time or "" and for "dead" the new
# message. Returns 1 if the lease was held, 0 if it had already expired.
SETTLE: Final = (
    _COMMON
    + """
local leases, deadlines, deliveries, target = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op = ARGV[1]
local entry = take_lease(leases, deadlines, ARGV[2])
if not entry then
  return 0
end
local key, raw, count = entry[1], entry[2], entry[3]
if op == 'release' then
  put_back(deliveries, key, raw, count - 1, true)
elseif op == 'requeue' then
  if ARGV[3] ~= '' then
    redis.call('ZADD', target, tonumber(ARGV[3]), cjson.encode({key, raw, count}))
  else
    put_back(deliveries, key, raw, count, true)
  end
elseif op == 'dead' then
  redis.call('LPUSH', target, ARGV[3])
end
return 1
"""
)

# KEYS: lease deadlines. ARGV: seconds, then tags. Renews only leases still held.
EXTEND: Final = (
    _COMMON
    + """
local deadline = now() + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[i])
end
return 0
"""
)

# KEYS: the queue's list. ARGV: the message, the queue's wake channel. kombu's LPUSH,
# plus a wake-up for idle workers when the list was empty (otherwise they are busy or
# about to fetch anyway, and a wake-up per message would only fill their sockets).
PUBLISH: Final = """
if redis.call('LPUSH', KEYS[1], ARGV[1]) == 1 then
  redis.call('PUBLISH', ARGV[2], '')
end
return 0
"""
