--[[
  set-paused.lua: pauses or resumes a queue for every server at once.
  Pausing adds it to the set `paused`, which claim.lua and promote.lua read
  in the same script as they take or promote jobs. Resuming removes it and
  puts the due jobs parked meanwhile (parked:<queue>, see promote in
  lib/common.lua) back into `delayed`, with their scores and members, where
  the next claim promotes them. Idempotent: a resent call finds the set as
  the first left it and nothing parked.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] queue   ARGV[3] "1" to pause, "0" to resume
  Output:  1 when the queue's state changed, else 0
  Also:    on a resume that changed it, PUBLISH "<base>wake" with {queue: now},
           so subscribed servers in other processes claim from it at once
]]
--@include lib/common.lua

local now, queue = tonumber(ARGV[1]), ARGV[2]
if ARGV[3] == "1" then return redis.call("SADD", B .. "paused", queue) end

local changed = redis.call("SREM", B .. "paused", queue)
-- 2,000 members a step: a ZADD of them is 4,000 arguments, what unpack
-- takes at most here (see batched).
local pk = parkedKey(queue)
while true do
  local ms = redis.call("ZRANGE", pk, "0", "1999", "WITHSCORES")
  if #ms == 0 then break end
  local args = {}
  for j = 1, #ms, 2 do
    args[j], args[j + 1] = ms[j + 1], ms[j]
  end
  redis.call("ZADD", K_DELAYED, unpack(args))
  redis.call("ZREMRANGEBYRANK", pk, "0", I(#ms / 2 - 1))
end
if changed == 1 then redis.call("PUBLISH", B .. "wake", cjson.encode({ [queue] = now })) end
return changed
