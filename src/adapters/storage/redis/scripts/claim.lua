--[[
  claim.lua: promotes due delayed jobs, then moves up to `limit` enqueued jobs
  of the given queues (in queue order, then priority, runAt, insertion) to
  processing under a lease: attempts + 1, leaseToken + 1. One script, so an
  idle poll is one request and concurrent claimers never share a job.

  A claim id makes a retried request (the HTTP driver retries network
  errors) answer with the jobs the first attempt took instead of taking
  more, which would strand those until their lease ran out.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] maxFinished   ARGV[3] finished TTL ms   ARGV[4] prune budget
  ARGV[5]  limit   ARGV[6] lease ms   ARGV[7] owner   ARGV[8] owner as a JSON string
  ARGV[9]  most delayed jobs to promote first   ARGV[10] claim id ("" = none)
  ARGV[11] number of queues, then the queue names
  Output:  array of claimed jobs, each the flat field/value array of its hash
]]
--@include lib/common.lua

local now, limit, leaseMs = tonumber(ARGV[1]), tonumber(ARGV[5]), tonumber(ARGV[6])
local owner, ownerJson, claimId = ARGV[7], ARGV[8], ARGV[10]
local nq = tonumber(ARGV[11])

local expired = redis.call("ZRANGEBYSCORE", B .. "claims:exp", "-inf", "(" .. I(now), "LIMIT", "0", "100")
if #expired > 0 then
  redis.call("HDEL", B .. "claims", unpack(expired))
  redis.call("ZREM", B .. "claims:exp", unpack(expired))
end

if claimId ~= "" then
  local prev = redis.call("HGET", B .. "claims", claimId)
  if prev then
    local out = {}
    for _, c in ipairs(cjson.decode(prev)) do
      local f = redis.call("HMGET", JOB .. c[1], "state", "leaseToken")
      if f[1] == "processing" and tonumber(f[2]) == c[2] then
        out[#out + 1] = redis.call("HGETALL", JOB .. c[1])
      end
    end
    return out
  end
end

promote(now, tonumber(ARGV[9]))

local out, claimed = {}, {}
local nowS, leaseUntil = I(now), I(now + leaseMs)
for q = 1, nq do
  local queue = ARGV[11 + q]
  local qk = B .. "ready:" .. queue
  while #out < limit do
    local ms = redis.call("ZRANGE", qk, "0", tostring(limit - #out - 1))
    if #ms == 0 then break end
    batched("ZREM", qk, ms)
    for _, m in ipairs(ms) do
      local id = string.sub(m, READY_ID_AT)
      local k = JOB .. id
      local f = redis.call("HMGET", k, "state", "attempts", "leaseToken", "history", "hn")
      if f[1] == "enqueued" then
        local attempts, token = tonumber(f[2]) + 1, tonumber(f[3]) + 1
        local hist, hn = pushHistory(f[4], f[5], entry("processing", now, '"claimed (attempt ' .. I(attempts) .. ')"', ownerJson))
        redis.call("HSET", k, "state", "processing", "attempts", I(attempts), "leaseToken", I(token),
          "leaseOwner", owner, "leaseUntil", leaseUntil, "updatedAt", nowS, "history", hist, "hn", I(hn))
        zadd(B .. "processing", leaseUntil, id)
        touch(id, nowS)
        count(queue, "enqueued", -1)
        count(queue, "processing", 1)
        out[#out + 1] = redis.call("HGETALL", k)
        claimed[#claimed + 1] = { id, token }
      end
    end
  end
  if #out >= limit then break end
end

if claimId ~= "" and #claimed > 0 then
  redis.call("HSET", B .. "claims", claimId, cjson.encode(claimed))
  redis.call("ZADD", B .. "claims:exp", leaseUntil, claimId)
end
finish(now)
return out
