--[[
  kv-hit.lua: counts one event in a fixed window (StorageDriver.kvHit).
  The counter is the hash kv:<key> (see kv-set.lua) with v the count and e
  the end of its window. While the window runs (e > now) the count goes up
  by one; otherwise (absent, ended, or an entry that holds no count) a new
  window starts at now with count 1, and Redis expires it when it ends.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] windowMs   ARGV[3] key
  Output:  { count, resetAt }
]]
local now, window, k = tonumber(ARGV[1]), tonumber(ARGV[2]), KEYS[1] .. "kv:" .. ARGV[3]

local cur = redis.call("HMGET", k, "v", "e")
local c, e = tonumber(cur[1]), tonumber(cur[2])
if c and e and e > now and c >= 0 and c == math.floor(c) then
  return { redis.call("HINCRBY", k, "v", 1), e }
end

e = now + window
redis.call("DEL", k)
redis.call("HSET", k, "v", "1", "e", string.format("%d", e))
redis.call("PEXPIRE", k, string.format("%d", window))
return { 1, e }
