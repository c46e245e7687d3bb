--[[
  recurring-remove.lua: removes a recurring definition.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  id
  Output:  1 when it existed, else 0
]]
local B = KEYS[1]
redis.call("HDEL", B .. "recurring:created", ARGV[1])
redis.call("HDEL", B .. "recurring:slot", ARGV[1])
return redis.call("HDEL", B .. "recurring", ARGV[1])
