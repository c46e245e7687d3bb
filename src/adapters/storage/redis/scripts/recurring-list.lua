--[[
  recurring-list.lua: every recurring definition.

  KEYS[1]  base "<prefix>{<tag>}:"
  Output:  { id -> definition JSON, id -> createdAt, id -> lastSlot }, each a flat hash array
]]
local B = KEYS[1]
return {
  redis.call("HGETALL", B .. "recurring"),
  redis.call("HGETALL", B .. "recurring:created"),
  redis.call("HGETALL", B .. "recurring:slot"),
}
