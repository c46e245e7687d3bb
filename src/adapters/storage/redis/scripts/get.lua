--[[
  get.lua: reads one job.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  id
  Output:  the flat field/value array of the job hash (empty when it does not exist)
]]
return redis.call("HGETALL", KEYS[1] .. "job:" .. ARGV[1])
