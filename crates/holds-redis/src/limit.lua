-- GCRA rate limit, one key per (class, client): the key keeps the theoretical
-- arrival time (TAT, in microseconds) of the client's next request.
-- KEYS[1]: the key. ARGV[1]: the clock, as engine.lua's ARGV[2] ("+<ms>": Redis's
-- TIME shifted; "=<ms>": a test's clock). ARGV[2]: emission interval (µs, a
-- minute over the rate). ARGV[3]: burst tolerance (µs, interval × (burst - 1)).
-- Returns -1 when allowed (and counts the request), else the µs to wait.
local now
if string.sub(ARGV[1], 1, 1) == "=" then
  now = tonumber(string.sub(ARGV[1], 2)) * 1000
else
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(string.sub(ARGV[1], 2)) * 1000
end
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local tat = tonumber(redis.call("GET", KEYS[1]) or now)
if tat < now then
  tat = now
end
local allow_at = tat - tolerance
if now < allow_at then
  return math.ceil(allow_at - now)
end
local next_tat = tat + interval
-- The key may go once its TAT is past (a fresh client starts from rest anyway).
-- Redis expires keys by its own clock: under a test's clock, which may stand
-- still while real time runs, keep it ten minutes longer.
local ttl = math.ceil((next_tat - now) / 1000) + 1
if string.sub(ARGV[1], 1, 1) == "=" then
  ttl = ttl + 600000
end
redis.call("SET", KEYS[1], string.format("%.0f", next_tat), "PX", ttl)
return -1
