"""The Lua scripts of the Redis queue: each state change of a delivery is one atomic script.

Every script gets the same keys (:data:`KEY_NAMES`, all under one ``{upstream}`` hash tag) and
returns ``{status, text, changed}`` where ``changed`` lists ``endpoint, state, count`` of each
per-endpoint count it moved. A script is applied whole or not at all, so a replica that dies
between two commands never leaves a delivery half moved; with ``appendfsync always`` its
effects are on disk before its reply. Text only: running them is :mod:`.redis_queue`'s.

Data: ``stream`` holds one entry per delivery that is due (read through the consumer group);
``deliveries`` maps a delivery key to its JSON state; ``bodies``/``events``/``refs`` map a message
id to its body, its endpoints, and how many kept deliveries still need it; ``pending``/``dead``
are sorted sets by creation time, ``retry`` by next-attempt time; ``counts`` the per-endpoint
counts; ``disabled`` the endpoints a 410 disabled.
"""

from __future__ import annotations

KEY_NAMES = (
    "stream",
    "deliveries",
    "bodies",
    "events",
    "refs",
    "pending",
    "dead",
    "retry",
    "counts",
    "disabled",
)

_PRELUDE = """
local stream, deliveries, bodies, events, refs = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local pending, dead, retry, counts, disabled = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local changed = {}
local function bump(endpoint, state, by)
  local n = redis.call('HINCRBY', counts, endpoint .. ' ' .. state, by)
  table.insert(changed, endpoint); table.insert(changed, state); table.insert(changed, n)
end
local function release_body(msg)
  if redis.call('HINCRBY', refs, msg, -1) <= 0 then
    redis.call('HDEL', refs, msg); redis.call('HDEL', bodies, msg); redis.call('HDEL', events, msg)
  end
end
local function settle(entry, group)
  if entry ~= '' then
    redis.call('XACK', stream, group, entry); redis.call('XDEL', stream, entry)
  end
end
"""

#: ARGV: msg id, body, max_pending, created, then (endpoint, key, json) per endpoint.
#: status 0 added (text: the endpoints), 1 a repeat (text: its endpoints), 2 full.
ADD = (
    _PRELUDE
    + """
local msg = ARGV[1]
local held = redis.call('HGET', events, msg)
if held then return {1, held, changed} end
local chosen = {}
for i = 5, #ARGV, 3 do
  if redis.call('SISMEMBER', disabled, ARGV[i]) == 0 then table.insert(chosen, i) end
end
if #chosen == 0 then return {0, '', changed} end
if redis.call('ZCARD', pending) + #chosen > tonumber(ARGV[3]) then return {2, '', changed} end
redis.call('HSET', bodies, msg, ARGV[2])
redis.call('HSET', refs, msg, #chosen)
local names = {}
for _, i in ipairs(chosen) do
  redis.call('HSET', deliveries, ARGV[i + 1], ARGV[i + 2])
  redis.call('ZADD', pending, ARGV[4], ARGV[i + 1])
  redis.call('XADD', stream, '*', 'key', ARGV[i + 1])
  bump(ARGV[i], 'pending', 1)
  table.insert(names, ARGV[i])
end
local joined = table.concat(names, ' ')
redis.call('HSET', events, msg, joined)
return {0, joined, changed}
"""
)

#: ARGV: key, json, next_at, stream entry id (or ''), group. The entry is settled first: Redis
#: checks a script against ``maxmemory`` at its first write, and an acknowledgement is no
#: growing write, so with ``noeviction`` a full Redis refuses new events but still lets the
#: deliveries it holds go on (as DELIVERED and DEAD, which start with a ZREM).
RESCHEDULE = (
    _PRELUDE
    + """
settle(ARGV[4], ARGV[5])
if redis.call('ZSCORE', pending, ARGV[1]) then
  redis.call('HSET', deliveries, ARGV[1], ARGV[2])
  redis.call('ZADD', retry, ARGV[3], ARGV[1])
end
return {0, '', changed}
"""
)

#: ARGV: key, msg id, endpoint, stream entry id (or ''), group.
DELIVERED = (
    _PRELUDE
    + """
if redis.call('ZREM', pending, ARGV[1]) == 1 then
  redis.call('HDEL', deliveries, ARGV[1]); redis.call('ZREM', retry, ARGV[1])
  bump(ARGV[3], 'pending', -1)
  release_body(ARGV[2])
end
settle(ARGV[4], ARGV[5])
return {0, '', changed}
"""
)

#: ARGV: key, msg id, endpoint, json, created, stream entry id (or ''), group, max_dead.
DEAD = (
    _PRELUDE
    + """
if redis.call('ZREM', pending, ARGV[1]) == 1 then
  redis.call('HSET', deliveries, ARGV[1], ARGV[4]); redis.call('ZREM', retry, ARGV[1])
  redis.call('ZADD', dead, ARGV[5], ARGV[1])
  bump(ARGV[3], 'pending', -1); bump(ARGV[3], 'dead', 1)
  while redis.call('ZCARD', dead) > tonumber(ARGV[8]) do
    local oldest = redis.call('ZPOPMIN', dead)[1]
    local raw = redis.call('HGET', deliveries, oldest)
    redis.call('HDEL', deliveries, oldest)
    if raw then
      local d = cjson.decode(raw)
      bump(d['endpoint'], 'dead', -1); release_body(d['msg_id'])
    end
  end
end
settle(ARGV[6], ARGV[7])
return {0, '', changed}
"""
)

#: ARGV: key, json (pending, due now), created, endpoint. Status 1 when it was dead.
REDELIVER = (
    _PRELUDE
    + """
if redis.call('ZREM', dead, ARGV[1]) == 0 then return {0, '', changed} end
redis.call('HSET', deliveries, ARGV[1], ARGV[2])
redis.call('ZADD', pending, ARGV[3], ARGV[1])
redis.call('XADD', stream, '*', 'key', ARGV[1])
bump(ARGV[4], 'dead', -1); bump(ARGV[4], 'pending', 1)
return {1, '', changed}
"""
)

#: ARGV: now, at most this many. Moves due retries onto the stream; text: the next due time.
PROMOTE = (
    _PRELUDE
    + """
local due = redis.call('ZRANGEBYSCORE', retry, '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, key in ipairs(due) do
  redis.call('ZREM', retry, key); redis.call('XADD', stream, '*', 'key', key)
end
local after = redis.call('ZRANGE', retry, 0, 0, 'WITHSCORES')
return {#due, after[2] or '', changed}
"""
)

#: ARGV: group, consumer, then stream entry ids. Renews (resets the idle time of) each entry
#: this consumer still owns; text: the ids it no longer owns, space-separated.
RENEW = (
    _PRELUDE
    + """
local lost = {}
for i = 3, #ARGV do
  local owner = redis.call('XPENDING', stream, ARGV[1], ARGV[i], ARGV[i], 1)[1]
  if owner and owner[2] == ARGV[2] then
    redis.call('XCLAIM', stream, ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return {0, table.concat(lost, ' '), changed}
"""
)
