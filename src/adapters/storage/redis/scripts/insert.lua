--[[
  insert.lua: inserts new jobs; a job whose uniqueKey is taken, or whose id
  exists, is not inserted (so a retried call creates nothing twice).

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] maxFinished   ARGV[3] finished TTL ms (0 = none)   ARGV[4] prune budget
  ARGV[5]  number of jobs, then per job:
           id, uniqueKey ("" = none), state, queue, priority, runAt, createdAt,
           n, then n field/value pairs of the job hash
  Output:  flat array: id, created (1/0), id, created, ... in input order
  Also:    PUBLISH "<base>wake" with {queue: earliest runAt} of the jobs created,
           so subscribed servers in other processes wake at once
]]
--@include lib/common.lua

local now = tonumber(ARGV[1])
local out = {}
local woken, anyWoken = {}, false
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  local id, uk, state, queue = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local priority, runAt, createdAt = tonumber(ARGV[i + 4]), ARGV[i + 5], ARGV[i + 6]
  local first, np = i + 8, tonumber(ARGV[i + 7])
  i = first + np * 2
  local existing = false
  if uk ~= "" then existing = redis.call("HGET", B .. "unique", uk) end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  elseif redis.call("EXISTS", JOB .. id) == 1 then
    out[#out + 1] = id
    out[#out + 1] = 0
  else
    local k = JOB .. id
    if uk ~= "" then redis.call("HSET", B .. "unique", uk, id) end
    local seq = place(id, state, queue, priority, tonumber(runAt))
    redis.call("HSET", k, "seq", I(seq), unpack(ARGV, first, first + np * 2 - 1))
    zadd(B .. "idx:created", createdAt, id)
    zadd(B .. "idx:updated", createdAt, id)
    zadd(B .. "idx:runat", runAt, id)
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
