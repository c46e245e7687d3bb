--[[
  reclaim.lua: jobs whose lease ended before now (leaseUntil < now) go back to
  enqueued (runAt = now), or to failed when their attempts are used up. The
  token is bumped, so the old owner's writes are refused. A job with a
  concurrency key frees its slot (freeSlot in lib/common.lua). Rate keys'
  counts past their keep are forgotten.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] maxFinished   ARGV[3] finished TTL ms   ARGV[4] prune budget
  ARGV[5]  limit
  Output:  how many were reclaimed
]]
--@include lib/common.lua

local now = tonumber(ARGV[1])
local nowS = I(now)
local ids = redis.call("ZRANGEBYSCORE", B .. "processing", "-inf", "(" .. nowS, "LIMIT", "0", ARGV[5])
local n = 0
if #ids > 0 then batched("ZREM", B .. "processing", ids) end
for _, id in ipairs(ids) do
  local k = JOB .. id
  local f = redis.call("HMGET", k, "state", "attempts", "maxAttempts", "leaseToken", "leaseOwner", "queue", "priority", "history", "hn", "concurrencyKey")
  if f[1] == "processing" then
    local attempts, maxAttempts = tonumber(f[2]), tonumber(f[3])
    local owner, queue = f[5] or "?", f[6]
    redis.call("HDEL", k, "leaseOwner", "leaseUntil")
    local to, reason, seq
    if attempts >= maxAttempts then
      to = "failed"
      reason = "lease expired; no attempts left (owner " .. owner .. ")"
      local message = "lease expired on attempt " .. I(attempts) .. " of " .. I(maxAttempts) .. " (owner " .. owner .. ")"
      redis.call("HSET", k, "error", '{"name":"LeaseExpiredError","message":' .. cjson.encode(message) .. "}", "finishedAt", nowS)
      seq = place(id, to, queue, 0, 0, nil, now)
      tally("failed")
    else
      to = "enqueued"
      reason = "lease expired (owner " .. owner .. ")"
      redis.call("HSET", k, "runAt", nowS)
      zadd(B .. "idx:runat", nowS, id)
      seq = place(id, to, queue, tonumber(f[7]), now)
    end
    local hist, hn = pushHistory(f[8], f[9], entry(to, now, cjson.encode(reason)))
    redis.call("HSET", k, "state", to, "leaseToken", I(tonumber(f[4]) + 1), "updatedAt", nowS, "history", hist, "hn", I(hn), "seq", I(seq))
    touch(id, nowS)
    count(queue, "processing", -1)
    count(queue, to, 1)
    if f[10] then freeSlot(f[10]) end
    n = n + 1
  end
end
-- Rate counts whose last window ended RATE_COUNT_KEEP_MS ago (rate:forget,
-- scored by claim.lua), at most the prune budget per call.
local forget = redis.call("ZRANGEBYSCORE", B .. "rate:forget", "-inf", nowS, "LIMIT", "0", ARGV[4])
if #forget > 0 then
  batched("HDEL", B .. "rate", forget)
  batched("ZREM", B .. "rate:forget", forget)
end
finish(now)
return n
