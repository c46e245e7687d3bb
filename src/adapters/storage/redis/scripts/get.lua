--[[
  get.lua: reads jobs by id.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  id, ARGV[2] id, ... (every argument is an id)
  Output:  one reply per id, in order: the flat field/value array of the
           job hash, or nil when the job does not exist
]]
local JOB = KEYS[1] .. "job:"
local out = {}
for j = 1, #ARGV do
  local h = redis.call("HGETALL", JOB .. ARGV[j])
  -- false, not nil: a nil would end the array here; Redis sends false as a nil reply.
  if #h == 0 then out[j] = false else out[j] = h end
end
return out
