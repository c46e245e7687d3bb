--[[
  steps.lua: replaces a job's durable steps and appends one history entry,
  fenced by its lease as progress.lua is (StorageDriver.saveSteps).

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] id   ARGV[3] token   ARGV[4] steps JSON
  ARGV[5]  the history entry's JSON
  Output:  1 when written, 0 when the lease is gone
]]
--@include lib/common.lua

local now, id = tonumber(ARGV[1]), ARGV[2]
local k = JOB .. id
local f = redis.call("HMGET", k, "state", "leaseToken", "history", "hn")
if f[1] ~= "processing" or tonumber(f[2]) ~= tonumber(ARGV[3]) then return 0 end
local hist, hn = pushHistory(f[3], f[4], ARGV[5])
redis.call("HSET", k, "steps", ARGV[4], "updatedAt", I(now), "history", hist, "hn", I(hn))
touch(id, I(now))
flushIndexes()
return 1
