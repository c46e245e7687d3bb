--[[
  waiters.lua: the event-waiter index of durable steps (StorageDriver
  addWaiter, waiters, removeWaiters). One sorted set per event name,
  "waiters:<event>", member the job id, score its expiresAt. The key
  expires (PEXPIRE) with its latest member, so an event no one waits for
  any more leaves nothing behind. As for kv entries (kv-set.lua), the
  expiry is a span from the caller's now; reads compare scores with the
  caller's now, never with Redis's clock.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] op: "add" | "list" | "remove"   ARGV[3] event
  add:     ARGV[4] job id   ARGV[5] expiresAt            Output: 1
  list:    ARGV[4] limit                                 Output: live ids
           (score > now), at most limit; the expired ones are removed
  remove:  ARGV[4...] job ids                            Output: 1
]]
local now, op = tonumber(ARGV[1]), ARGV[2]
local k = KEYS[1] .. "waiters:" .. ARGV[3]
local function I(n)
  return string.format("%.0f", n)
end

if op == "add" then
  redis.call("ZADD", k, ARGV[5], ARGV[4])
  local last = redis.call("ZRANGE", k, "-1", "-1", "WITHSCORES")
  local ttl = tonumber(last[2]) - now
  -- Every member expired (an add already past its expiry): nothing to keep,
  -- and a key without an expiry would stay until the event's next list.
  if ttl > 0 then
    redis.call("PEXPIRE", k, I(ttl))
  else
    redis.call("DEL", k)
  end
  return 1
elseif op == "list" then
  redis.call("ZREMRANGEBYSCORE", k, "-inf", I(now))
  return redis.call("ZRANGEBYSCORE", k, "(" .. I(now), "+inf", "LIMIT", "0", ARGV[4])
else
  for i = 4, #ARGV, 4000 do
    redis.call("ZREM", k, unpack(ARGV, i, math.min(i + 3999, #ARGV)))
  end
  return 1
end
