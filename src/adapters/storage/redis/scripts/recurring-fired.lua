--[[
  recurring-fired.lua: records that a definition fired a slot, if the slot
  moves forward.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  id   ARGV[2] slot (epoch ms)
  Output:  1 when recorded, 0 when the definition is gone or the slot is not newer
]]
local B = KEYS[1]
if redis.call("HEXISTS", B .. "recurring", ARGV[1]) == 0 then return 0 end
local last = redis.call("HGET", B .. "recurring:slot", ARGV[1])
if last and tonumber(last) >= tonumber(ARGV[2]) then return 0 end
redis.call("HSET", B .. "recurring:slot", ARGV[1], ARGV[2])
return 1
