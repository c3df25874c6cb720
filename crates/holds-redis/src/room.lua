-- The waiting room of one event (issue 12), mirroring holds-memory's room.rs.
-- Keys (the event's hash tag, one slot):
--   KEYS[1] room     hash: joined, drawn (1 once the pre-queue is drawn), plen
--                    (the pre-queue's length), seed (the lottery's, kept as text:
--                    a u64 is no Lua number), served, next (ms: next admission due)
--   KEYS[2] joins    hash: customer (16 bytes of ulid) -> join number; the only
--                    per-joiner memory
--   KEYS[3] sessions sorted set: admitted rank scored by its session's end (ms)
-- The three keys expire a week (real time) after the room was last asked anything
-- but a session check: a finished sale's queue does not stay in Redis for ever.
-- ARGV[1] op; ARGV[2] the clock as engine.lua's ("+<ms>": Redis's TIME shifted,
-- "=<ms>": a test's clock). join/state: ARGV[3] interval ms, ARGV[4] max active
-- (0: no cap), ARGV[5] session ms, ARGV[6] "1" when the sale runs, ARGV[7] seed,
-- ARGV[8] (join) the customer. session/leave: ARGV[3] the rank.
local room, joins, sessions = KEYS[1], KEYS[2], KEYS[3]
local op = ARGV[1]
local now
if string.sub(ARGV[2], 1, 1) == "=" then
  now = tonumber(string.sub(ARGV[2], 2))
else
  local clock = redis.call("TIME")
  now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) + tonumber(string.sub(ARGV[2], 2))
end

local function int(n)
  return string.format("%.0f", n)
end

-- Lets in whoever the rate and the free capacity allow by now (room.rs `advance`).
local function advance()
  redis.call("ZREMRANGEBYSCORE", sessions, "-inf", int(now))
  if ARGV[6] ~= "1" then
    return
  end
  local interval = tonumber(ARGV[3])
  local max_active = tonumber(ARGV[4])
  local session_ms = tonumber(ARGV[5])
  local r = redis.call("HMGET", room, "joined", "drawn", "served", "next")
  local joined = tonumber(r[1] or "0")
  local served = tonumber(r[3] or "0")
  local next_ms = tonumber(r[4] or "0")
  if not r[2] then
    redis.call("HSET", room, "drawn", "1", "plen", int(joined), "seed", ARGV[7])
    next_ms = now
  end
  local n = 0
  if now >= next_ms then
    n = math.floor((now - next_ms) / interval) + 1
  end
  n = math.min(n, joined - served)
  if max_active > 0 then
    n = math.min(n, math.max(0, max_active - redis.call("ZCARD", sessions)))
  end
  local rank = served
  while rank < served + n do
    local args = {}
    local last = math.min(served + n, rank + 500)
    for k = rank, last - 1 do
      args[#args + 1] = int(now + session_ms)
      args[#args + 1] = int(k)
    end
    redis.call("ZADD", sessions, unpack(args))
    rank = last
  end
  served = served + n
  next_ms = math.max(next_ms + n * interval, now)
  redis.call("HSET", room, "served", int(served), "next", int(next_ms))
end

local function keep()
  for _, k in ipairs({room, joins, sessions}) do
    redis.call("PEXPIRE", k, 604800000)
  end
end

local function state()
  local r = redis.call("HMGET", room, "joined", "drawn", "plen", "seed", "served", "next")
  return {r[1] or "0", r[2] or "0", r[3] or "0", r[4] or "0", r[5] or "0", r[6] or int(now), int(now)}
end

if op == "join" then
  advance()
  local number = redis.call("HGET", joins, ARGV[8])
  local new = "0"
  if not number then
    number = int(redis.call("HINCRBY", room, "joined", 1) - 1)
    redis.call("HSET", joins, ARGV[8], number)
    new = "1"
    advance()
  end
  keep()
  local out = state()
  out[#out + 1] = number
  out[#out + 1] = new
  return out
elseif op == "state" then
  advance()
  keep()
  return state()
elseif op == "session" then
  local s = redis.call("ZSCORE", sessions, ARGV[3])
  if s and tonumber(s) > now then
    return {s}
  end
  return {}
elseif op == "leave" then
  return redis.call("ZREM", sessions, ARGV[3])
end
return redis.error_reply("unknown op " .. tostring(op))
