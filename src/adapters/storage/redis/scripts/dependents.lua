--[[
  dependents.lua: the jobs that wait for any of the given jobs (flows,
  continuations): the union of their dependency edge sets, each waiter once.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  id, ARGV[2] id, ... (every argument is a dependency's id)
  Output:  the waiter ids, in any order
]]
local B = KEYS[1]
local keys = {}
for j = 1, #ARGV do keys[j] = B .. "deps:" .. ARGV[j] end
if #keys == 0 then return {} end
return redis.call("SUNION", unpack(keys))
