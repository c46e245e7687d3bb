--[[
  kv-set.lua: sets one key-value entry (StorageDriver.kvSet and kvAdd).
  The entry is the hash kv:<key> with fields v (the value) and e (expiresAt,
  epoch ms, "" for none). Its Redis expiry is set to the same moment as a
  span from now, so Redis purges it; readers also compare e with their own
  now, so an entry is never read back past expiresAt whatever Redis's clock
  says.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] key   ARGV[3] value   ARGV[4] expiresAt or ""
  ARGV[5]  "1": only when the key is absent or expired (kvAdd), else "0"
  Output:  the value the key holds after the call (false when none)
]]
local now, k, value, e = tonumber(ARGV[1]), KEYS[1] .. "kv:" .. ARGV[2], ARGV[3], ARGV[4]

if ARGV[5] == "1" then
  local cur = redis.call("HMGET", k, "v", "e")
  if cur[1] and (not cur[2] or cur[2] == "" or tonumber(cur[2]) > now) then return cur[1] end
end

redis.call("DEL", k)
if e ~= "" and tonumber(e) <= now then return false end
redis.call("HSET", k, "v", value, "e", e)
if e ~= "" then redis.call("PEXPIRE", k, string.format("%d", tonumber(e) - now)) end
return value
