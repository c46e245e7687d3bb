--[[
  stats.lua: counts by state and by queue, and throughput buckets.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  number of minute buckets m, then m minute bucket starts,
           then the hour bucket starts
  Output:  { counts hash (flat), qcounts hash (flat),
             HMGET of "s:<b>", "f:<b>" per minute bucket,
             HMGET of "s:<b>", "f:<b>" per hour bucket }
]]
local B = KEYS[1]
local m = tonumber(ARGV[1])
local function fields(from, to)
  local f = {}
  for j = from, to do
    f[#f + 1] = "s:" .. ARGV[j]
    f[#f + 1] = "f:" .. ARGV[j]
  end
  return f
end
local mf, hf = fields(2, m + 1), fields(m + 2, #ARGV)
return {
  redis.call("HGETALL", B .. "counts"),
  redis.call("HGETALL", B .. "qcounts"),
  #mf > 0 and redis.call("HMGET", B .. "tp:m", unpack(mf)) or {},
  #hf > 0 and redis.call("HMGET", B .. "tp:h", unpack(hf)) or {},
}
