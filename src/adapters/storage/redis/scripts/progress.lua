--[[
  progress.lua: records a worker's progress value, fenced by its lease.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] id   ARGV[3] token   ARGV[4] progress JSON
  Output:  1 when recorded, 0 when the lease is gone
]]
--@include lib/common.lua

local now, id = tonumber(ARGV[1]), ARGV[2]
local k = JOB .. id
local f = redis.call("HMGET", k, "state", "leaseToken")
if f[1] ~= "processing" or tonumber(f[2]) ~= tonumber(ARGV[3]) then return 0 end
redis.call("HSET", k, "progress", ARGV[4], "updatedAt", I(now))
touch(id, I(now))
flushIndexes()
return 1
