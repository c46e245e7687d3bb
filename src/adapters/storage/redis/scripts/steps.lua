--[[
  steps.lua: replaces a job's durable steps and appends one history entry,
  fenced by its lease as progress.lua is (StorageDriver.saveSteps). The
  steps are the job's field `steps`, JSON text stored as given (never
  decoded here, so numbers such as 1e21 or 0.1 read back as written); a
  job that never saved any has no such field, so claims and completions of
  jobs without steps pay nothing for them but a field absent from a read.

  A resent request (the HTTP client resends one whose reply was lost) finds
  its own entry last in the history: the steps are written again (the same
  text) and the entry is not appended a second time.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] id   ARGV[3] token   ARGV[4] steps JSON
  ARGV[5]  the history entry's JSON
  Output:  1 when written, 0 when the lease is gone
]]
--@include lib/common.lua

local now, id, e = tonumber(ARGV[1]), ARGV[2], ARGV[5]
local k = JOB .. id
local f = redis.call("HMGET", k, "state", "leaseToken", "history", "hn")
if f[1] ~= "processing" or tonumber(f[2]) ~= tonumber(ARGV[3]) then return 0 end
local stored = f[3] or ""
local nowS = I(now)
if stored == e or string.sub(stored, -#e - 1) == "\n" .. e then
  redis.call("HSET", k, "steps", ARGV[4], "updatedAt", nowS)
else
  local hist, hn = pushHistory(stored, f[4], e)
  redis.call("HSET", k, "steps", ARGV[4], "updatedAt", nowS, "history", hist, "hn", IC(hn))
end
touch(id, nowS)
flushIndexes()
return 1
