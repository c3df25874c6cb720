-- The hold engine in Redis: one event's inventory, mirroring the domain's
-- EventInventory. Every script runs atomically. Keys (one hash tag, one slot):
--   KEYS[1] meta      hash: seats (count), version, ga (number of GA tiers)
--   KEYS[2] status    string: one byte per seat, A / H / S (the seat map itself)
--   KEYS[3] ga        hash: cap:<i>, held:<i>, sold:<i>
--   KEYS[4] holds     hash: hold id -> "S|<expires>|i,j,k" or "G|<expires>|tier|qty"
--   KEYS[5] deadlines sorted set: hold id scored by its deadline (ms)
--   KEYS[6] loading   set: the tokens of the loaders reading a snapshot now
-- ARGV[1] is the operation; ARGV[2] is the clock: "+<ms>" is Redis's own clock
-- shifted by that much (+0 in production), "=<ms>" is a test's clock read out (tests
-- that move time by hand). A missing meta means the event is not loaded (never, or
-- lost): the caller rebuilds it from the store.
--
-- Now is Redis's own clock (TIME), the one clock every node shares: a node's idea
-- of the time never expires anything. (A script that reads TIME and then writes
-- needs effects replication: the default since Redis 5, the only mode since 7.)

local meta, status, ga, holds, deadlines, loading = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local op = ARGV[1]
local now
if string.sub(ARGV[2], 1, 1) == "=" then
  now = tonumber(string.sub(ARGV[2], 2))
else
  local clock = redis.call("TIME")
  now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) + tonumber(string.sub(ARGV[2], 2))
end

local function split(s, sep)
  local out = {}
  for part in string.gmatch(s, "([^" .. sep .. "]+)") do out[#out + 1] = part end
  return out
end

local function free(enc)
  local p = split(enc, "|")
  if p[1] == "S" then
    for _, s in ipairs(split(p[3], ",")) do
      redis.call("SETRANGE", status, tonumber(s), "A")
    end
  else
    redis.call("HINCRBY", ga, "held:" .. p[3], -tonumber(p[4]))
  end
end

-- Lazy expiry: every operation first expires what is due, so an expired hold
-- never blocks a seat whether or not a sweeper ran.
local function expire_due()
  local due = redis.call("ZRANGEBYSCORE", deadlines, "-inf", now)
  local expired = {}
  for _, id in ipairs(due) do
    local enc = redis.call("HGET", holds, id)
    if enc then
      free(enc)
      redis.call("HDEL", holds, id)
      redis.call("HINCRBY", meta, "version", 1)
      expired[#expired + 1] = id
    end
    redis.call("ZREM", deadlines, id)
  end
  return expired
end

if op == "prepare" then
  -- A loader is about to read a snapshot: ARGV[3] is its token. A loss of state
  -- takes the tokens with it, and the load below then refuses the snapshot. Several
  -- loaders (nodes) may prepare at once: each adds its own, none voids another's.
  redis.call("SADD", loading, ARGV[3])
  redis.call("EXPIRE", loading, 60)
  return {"ok"}
end

if op == "load" then
  -- ARGV: token, version, seat count, status string, ga count, then per tier
  -- cap,held,sold, then per hold id, enc, expires.
  if redis.call("EXISTS", meta) == 1 then return 0 end
  if redis.call("SISMEMBER", loading, ARGV[3]) == 0 then return {"stale"} end
  -- Loaded now: the other loaders' tokens go too (they find it loaded).
  redis.call("DEL", loading)
  -- Whatever is left of an earlier life of this event (a partial loss) goes: the
  -- snapshot is the whole truth.
  redis.call("DEL", status, ga, holds, deadlines)
  local i = 4
  local version, seats, st, ngas = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 4
  redis.call("SET", status, st)
  for t = 0, ngas - 1 do
    redis.call("HSET", ga, "cap:" .. t, ARGV[i], "held:" .. t, ARGV[i + 1], "sold:" .. t, ARGV[i + 2])
    i = i + 3
  end
  while i + 2 <= #ARGV do
    redis.call("HSET", holds, ARGV[i], ARGV[i + 1])
    redis.call("ZADD", deadlines, ARGV[i + 2], ARGV[i])
    i = i + 3
  end
  redis.call("HSET", meta, "version", version, "seats", seats, "ga", ngas)
  return 1
end

-- Loaded means meta and, for a seated event, its seat map. Half an event (which no
-- real loss leaves, but a partial delete could) counts as lost: clear and rebuild.
-- A follow-up (release, confirm, extend) that finds the event not loaded is a
-- change the store committed while a loader may be reading a snapshot from before
-- it: the loaders' tokens go, and their loads refuse such a snapshot.
local function not_loaded()
  if op == "release" or op == "confirm" or op == "extend" then
    redis.call("DEL", loading)
  end
  return {"not_loaded"}
end
if redis.call("EXISTS", meta) == 0 then return not_loaded() end
if redis.call("HGET", meta, "seats") ~= "0" and redis.call("EXISTS", status) == 0 then
  redis.call("DEL", meta, status, ga, holds, deadlines)
  return not_loaded()
end

if op == "hold" then
  -- ARGV: id, expires, kind ("S" then seat indices | "G" then tier, qty)
  local id, expires, kind = ARGV[3], tonumber(ARGV[4]), ARGV[5]
  expire_due()
  if expires <= now then return {"invalid", "deadline is not in the future"} end
  if redis.call("HEXISTS", holds, id) == 1 then return {"duplicate"} end
  local enc
  if kind == "S" then
    local count = tonumber(redis.call("HGET", meta, "seats"))
    if #ARGV < 6 then return {"invalid", "no seats"} end
    local seen, taken, list = {}, {}, {}
    for a = 6, #ARGV do
      local s = tonumber(ARGV[a])
      if s == nil or s < 0 or s >= count then return {"invalid", "no such seat"} end
      if seen[s] then return {"invalid", "seat repeated"} end
      seen[s] = true
      if redis.call("GETRANGE", status, s, s) ~= "A" then taken[#taken + 1] = s end
      list[#list + 1] = s
    end
    if #taken > 0 then
      local out = {"taken"}
      for _, s in ipairs(taken) do out[#out + 1] = s end
      return out
    end
    for _, s in ipairs(list) do redis.call("SETRANGE", status, s, "H") end
    enc = "S|" .. expires .. "|" .. table.concat(list, ",")
  else
    local tier, qty = tonumber(ARGV[6]), tonumber(ARGV[7])
    local ntiers = tonumber(redis.call("HGET", meta, "ga"))
    if tier == nil or tier < 0 or tier >= ntiers then return {"invalid", "no such tier"} end
    if qty == nil or qty <= 0 then return {"invalid", "quantity must be positive"} end
    local g = redis.call("HMGET", ga, "cap:" .. tier, "held:" .. tier, "sold:" .. tier)
    local remaining = tonumber(g[1]) - tonumber(g[2]) - tonumber(g[3])
    if remaining < 0 then remaining = 0 end
    if qty > remaining then return {"sold_out", remaining} end
    redis.call("HINCRBY", ga, "held:" .. tier, qty)
    enc = "G|" .. expires .. "|" .. tier .. "|" .. qty
  end
  redis.call("HSET", holds, id, enc)
  redis.call("ZADD", deadlines, expires, id)
  redis.call("HINCRBY", meta, "version", 1)
  return {"ok"}
end

if op == "release" or op == "confirm" then
  local id = ARGV[3]
  expire_due()
  local enc = redis.call("HGET", holds, id)
  if not enc then return {"none"} end
  if op == "release" then
    free(enc)
  else
    local p = split(enc, "|")
    if p[1] == "S" then
      for _, s in ipairs(split(p[3], ",")) do redis.call("SETRANGE", status, tonumber(s), "S") end
    else
      redis.call("HINCRBY", ga, "held:" .. p[3], -tonumber(p[4]))
      redis.call("HINCRBY", ga, "sold:" .. p[3], tonumber(p[4]))
    end
  end
  redis.call("HDEL", holds, id)
  redis.call("ZREM", deadlines, id)
  redis.call("HINCRBY", meta, "version", 1)
  return {"ok", enc}
end

if op == "extend" then
  local id, expires = ARGV[3], tonumber(ARGV[4])
  expire_due()
  if expires <= now then return {"none"} end
  local enc = redis.call("HGET", holds, id)
  if not enc then return {"none"} end
  local p = split(enc, "|")
  p[2] = tostring(expires)
  redis.call("HSET", holds, id, table.concat(p, "|"))
  redis.call("ZADD", deadlines, expires, id)
  return {"ok"}
end

if op == "map" then
  expire_due()
  local out = {"ok", redis.call("HGET", meta, "version"), redis.call("GET", status) or ""}
  local ntiers = tonumber(redis.call("HGET", meta, "ga"))
  for t = 0, ntiers - 1 do
    local g = redis.call("HMGET", ga, "cap:" .. t, "held:" .. t, "sold:" .. t)
    out[#out + 1] = g[1]
    out[#out + 1] = g[2]
    out[#out + 1] = g[3]
  end
  return out
end

if op == "version" then
  -- The map's version alone (after expiry, as "map" would): no 50 KB status read.
  expire_due()
  return {"ok", redis.call("HGET", meta, "version")}
end

if op == "expire" then
  local due = expire_due()
  local out = {"ok"}
  for _, id in ipairs(due) do out[#out + 1] = id end
  return out
end

return {"invalid", "unknown operation"}
