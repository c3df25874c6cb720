-- wrk cross-check of the hold endpoint (docs/benchmarks.md): TOKEN, EVENT and a
-- file of the event's seat ids (SEATS, one per line) come from the environment.
-- one new hold per request; each thread walks its own half of the seats
local seats = {}
for line in io.lines(os.getenv("SEATS") or "seats.txt") do seats[#seats + 1] = line end
local token, event = os.getenv("TOKEN"), os.getenv("EVENT")
local threads, counter = {}, 0
function setup(thread)
  counter = counter + 1
  thread:set("first", (counter - 1) * 25000)
  table.insert(threads, thread)
end
local n = 0
request = function()
  n = n + 1
  local s = seats[(first + n) % #seats + 1]
  return wrk.format("POST", "/v1/events/" .. event .. "/holds",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, '{"seats":["' .. s .. '"]}')
end
