"""The Lua scripts the Redis bus runs inside Redis, and the keys they use.

Each runs atomically: `PUBLISH` takes a room's next event id, splices it into the body,
publishes and keeps the history; `INSTALL` puts in a new block of ids reserved in
PostgreSQL; `TAKE_UP` merges the stored history back in after Redis lost it. The Python
side (`redis_bus.py`) calls them and reads the channels.
"""

from __future__ import annotations

PREFIX = "livecore:room:"
# KEYS: the room's id block (a hash: next, last), channel, history. Answers 0 when the block
# is used up or missing: the node installs a new one and asks again.
PUBLISH = """
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
local id = tonumber(redis.call('HGET', KEYS[1], 'next') or '1')
if id > last then return 0 end
redis.call('HSET', KEYS[1], 'next', id + 1)
local sid = string.format('%d', id)
local body = ARGV[2] .. sid .. ARGV[3]
redis.call('PUBLISH', KEYS[2], ARGV[1] .. ' ' .. sid .. ' ' .. body)
if ARGV[4] ~= '0' then
  redis.call('LPUSH', KEYS[3], body)
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
  redis.call('EXPIRE', KEYS[3], 86400)
end
return id
"""
# A new block (first, last) replaces the one in use only if it is above it: two nodes that
# reserved blocks at once leave the higher one in place.
INSTALL = """
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
if last < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'next', ARGV[1], 'last', ARGV[2])
end
return 1
"""
# Take up the stored history once per Redis lifetime: KEYS history, marker; ARGV keep, then
# the stored bodies oldest first. The result holds each event once, in id order.
TAKE_UP = """
local function id_of(b) return tonumber(string.match(b, '"id":(%d+)')) or 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then
  local by_id, ids = {}, {}
  local function add(b)
    local id = id_of(b)
    if by_id[id] == nil then table.insert(ids, id) end
    by_id[id] = b
  end
  for i = 2, #ARGV do add(ARGV[i]) end
  for _, b in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do add(b) end
  table.sort(ids)
  redis.call('DEL', KEYS[1])
  for _, id in ipairs(ids) do redis.call('LPUSH', KEYS[1], by_id[id]) end
  redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[1]) - 1)
  redis.call('EXPIRE', KEYS[1], 86400)
  redis.call('SET', KEYS[2], '1', 'EX', 86400)
end
return redis.call('LRANGE', KEYS[1], 0, -1)
"""
# KEYS: the room's history. ARGV: pairs of (body, its replacement). Matched by value, not by
# position: events published since the node read the list have moved the old ones down.
RENAME = """
local n = 0
for i, b in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  for j = 1, #ARGV, 2 do
    if b == ARGV[j] then
      redis.call('LSET', KEYS[1], i - 1, ARGV[j + 1])
      n = n + 1
      break
    end
  end
end
return n
"""


def channel(room: int) -> str:
    return f"{PREFIX}{room}"


def room_keys(room: int) -> list[str]:
    return [f"{PREFIX}{room}:ids", channel(room), f"{PREFIX}{room}:history"]
