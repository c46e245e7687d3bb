--[[
  extend.lua: renews the leases still held (processing under the same token):
  leaseUntil = now + leaseMs.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] lease ms
  ARGV[3]  number of leases, then id, token per lease
  Output:  array of the ids whose lease was renewed
]]
--@include lib/common.lua

local leaseUntil = I(tonumber(ARGV[1]) + tonumber(ARGV[2]))
local out = {}
for j = 0, tonumber(ARGV[3]) - 1 do
  local id, token = ARGV[4 + j * 2], tonumber(ARGV[5 + j * 2])
  local k = JOB .. id
  local f = redis.call("HMGET", k, "state", "leaseToken")
  if f[1] == "processing" and tonumber(f[2]) == token then
    redis.call("HSET", k, "leaseUntil", leaseUntil)
    zadd(B .. "processing", leaseUntil, id)
    out[#out + 1] = id
  end
end
flushIndexes()
return out
