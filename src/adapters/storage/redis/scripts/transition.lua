--[[
  transition.lua: an operator's change to one job, applied only from the
  given states: to deleted (soft delete: finishedAt = now) or to enqueued
  (requeue: attempts 0, runAt now, lease, error, result and progress
  cleared). Either way the token is bumped: the current lease holder, if
  any, can no longer write the job. The call's operation id is kept on the
  job: a retried request (same id) answers applied without a second change.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] maxFinished   ARGV[3] finished TTL ms   ARGV[4] prune budget
  ARGV[5]  id   ARGV[6] target state   ARGV[7] history entry JSON
  ARGV[8]  operation id (unique per call)
  ARGV[9]  number of allowed source states, then the states
  Output:  nil when the job does not exist; else { 1 | 0 (applied), fields of the job hash }
]]
--@include lib/common.lua

local now, id, to, e = tonumber(ARGV[1]), ARGV[5], ARGV[6], ARGV[7]
local k = JOB .. id
local op = ARGV[8]
local f = redis.call("HMGET", k, "state", "queue", "priority", "runAt", "seq", "leaseToken", "history", "hn", "op")
if not f[1] then return nil end
local allowed = false
for j = 1, tonumber(ARGV[9]) do
  if ARGV[9 + j] == f[1] then allowed = true end
end
if not allowed then
  return { f[9] == op and 1 or 0, redis.call("HGETALL", k) }
end

local queue, priority, runAt = f[2], tonumber(f[3]), tonumber(f[4])
unplace(id, f[1], queue, priority, runAt, tonumber(f[5]) or 0)
redis.call("HDEL", k, "leaseOwner", "leaseUntil")
local finishedAt = nil
if to == "enqueued" then
  runAt = now
  redis.call("HDEL", k, "error", "finishedAt", "progress", "result")
  redis.call("HSET", k, "attempts", "0", "runAt", I(now))
  zadd(B .. "idx:runat", I(now), id)
else
  finishedAt = now
  redis.call("HSET", k, "finishedAt", I(now))
end
local hist, hn = pushHistory(f[7], f[8], e)
local seq = place(id, to, queue, priority, runAt, nil, finishedAt)
redis.call("HSET", k, "state", to, "leaseToken", I(tonumber(f[6]) + 1), "updatedAt", I(now), "history", hist, "hn", I(hn), "seq", I(seq), "op", op)
touch(id, I(now))
count(queue, f[1], -1)
count(queue, to, 1)
finish(now)
return { 1, redis.call("HGETALL", k) }
