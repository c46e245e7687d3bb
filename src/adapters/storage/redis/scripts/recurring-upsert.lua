--[[
  recurring-upsert.lua: inserts or replaces a recurring definition; an
  existing one keeps its createdAt and lastSlot (stored beside it).

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  id   ARGV[2] definition JSON   ARGV[3] createdAt
  Output:  1 when it was new, 0 when it replaced one
]]
local B = KEYS[1]
redis.call("HSET", B .. "recurring", ARGV[1], ARGV[2])
return redis.call("HSETNX", B .. "recurring:created", ARGV[1], ARGV[3])
