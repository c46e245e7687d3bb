--[[
  promote.lua: moves up to `limit` due scheduled / awaiting_retry jobs
  (runAt <= now) to enqueued; those of a paused queue are parked instead
  (see promote in lib/common.lua), to wait for the queue to resume.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] maxFinished   ARGV[3] finished TTL ms   ARGV[4] prune budget
  ARGV[5]  limit
  Output:  how many were promoted
]]
--@include lib/common.lua

local now = tonumber(ARGV[1])
local n = promote(now, tonumber(ARGV[5]), pausedSet())
finish(now)
return n
