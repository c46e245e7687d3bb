--[[
  insert.lua: inserts new jobs; a job whose uniqueKey is taken, or whose id
  exists, is not inserted (so a retried call creates nothing twice).

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] maxFinished   ARGV[3] finished TTL ms (0 = none)   ARGV[4] prune budget
  ARGV[5]  number of jobs, then per job:
           uniqueKey ("" = none), priority, runAt, createdAt (as integers, for
           the indexes), the values of REQUIRED_FIELDS (codec.ts) in order,
           n, then n field/value pairs of the optional fields it has
  Output:  flat array: id, created (1/0), id, created, ... in input order
  Also:    PUBLISH "<base>wake" with {queue: earliest runAt} of the jobs created,
           so subscribed servers in other processes wake at once
]]
--@include lib/common.lua

-- The values of the fields every job has come in the order of
-- REQUIRED_FIELDS in codec.ts, without their names: Redis's Lua hashes
-- every byte of every argument, ~0.14 us an argument.
local NREQ = 14

local now = tonumber(ARGV[1])
local out = {}
local woken, anyWoken = {}, false
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  local uk, priority, runAt, createdAt = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local v = i + 4 -- the first required value
  local id, queue, state = ARGV[v], ARGV[v + 3], ARGV[v + 5]
  local first, np = v + NREQ + 1, tonumber(ARGV[v + NREQ])
  i = first + np * 2
  local existing = false
  if uk ~= "" then existing = redis.call("HGET", B .. "unique", uk) end
  local k = JOB .. id
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  elseif redis.call("EXISTS", k) == 1 then
    out[#out + 1] = id
    out[#out + 1] = 0
  else
    if uk ~= "" then redis.call("HSET", B .. "unique", uk, id) end
    local seq = place(id, state, queue, priority, tonumber(runAt))
    redis.call("HSET", k, "seq", I(seq), "id", id, "name", ARGV[v + 1], "args", ARGV[v + 2], "queue", queue,
      "priority", ARGV[v + 4], "state", state, "attempts", ARGV[v + 6], "maxAttempts", ARGV[v + 7],
      "createdAt", ARGV[v + 8], "updatedAt", ARGV[v + 9], "runAt", ARGV[v + 10], "leaseToken", ARGV[v + 11],
      "history", ARGV[v + 12], "hn", ARGV[v + 13], unpack(ARGV, first, i - 1))
    zadd(K_CREATED, createdAt, id)
    zadd(K_UPDATED, createdAt, id)
    zadd(K_RUNAT, runAt, id)
    count(queue, state, 1)
    local r = tonumber(runAt)
    if woken[queue] == nil or r < woken[queue] then woken[queue] = r end
    anyWoken = true
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
if anyWoken then redis.call("PUBLISH", B .. "wake", cjson.encode(woken)) end
finish(now)
return out
