--[[
  transition.lua: a change of state by an operator (delete, requeue) or by
  the core settling a waiting job (release, fail, delete), applied to each
  job whose state is one of the given states: to deleted (soft delete:
  finishedAt = now), to failed (finishedAt = now, the given error recorded,
  counted in the failed throughput as a failed run is) or to enqueued
  (requeue or release: attempts 0, runAt now, lease, error, result and
  progress cleared). Either way the token is bumped: the current lease
  holder, if any, can no longer write the job. The call's operation id is
  kept on each job it changed: a retried request (same id) answers applied
  without a second change. A job taken out of processing frees its
  concurrency slot (freeSlot in lib/common.lua). A job taken out of
  awaiting loses the dependency edges it is the waiter of (dropEdges).

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] maxFinished   ARGV[3] finished TTL ms   ARGV[4] prune budget
  ARGV[5]  target state   ARGV[6] history entry JSON
  ARGV[7]  operation id (unique per call)
  ARGV[8]  error JSON for the target failed ("" = none: a failed job keeps
           the error it has)
  ARGV[9]  number of allowed source states s, then the states,
           then the ids (every argument after the states)
  Output:  one reply per id, in order: nil when the job does not exist,
           else { 1 | 0 (applied), fields of the job hash as it is after
           the change, 1 | 0 (applied, the job is now deleted or failed,
           and jobs wait for it: its deps:<id> set exists) }
  Also:    PUBLISH "<base>cancel" with {"ids": [...], "reason": "..."}: the
           jobs this call took from processing to deleted or failed, and the
           reason of the history entry, so a server in another process aborts
           their runs at once. Once per call, and only for jobs this call
           changed: a retried request finds them changed already and
           publishes nothing.
]]
--@include lib/common.lua

local now, to, e, op, err = tonumber(ARGV[1]), ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local nowS = I(now)
local ns = tonumber(ARGV[9])
local allowed = {}
for j = 1, ns do allowed[ARGV[9 + j]] = true end
-- Whether a job this call finished (applied, to deleted or failed) has waiters.
local function flag(applied, id)
  return (applied and to ~= "enqueued" and hasDependents(id)) and 1 or 0
end

local out = {}
local n = 0
local cancelled = {}
for a = 10 + ns, #ARGV do
  local id = ARGV[a]
  local k = JOB .. id
  n = n + 1
  local f = redis.call("HMGET", k, "state", "queue", "priority", "runAt", "seq", "leaseToken", "history", "hn", "op", "concurrencyKey", "flow")
  if not f[1] then
    -- false, not nil: a nil would end the array here; Redis sends false as a nil reply.
    out[n] = false
  elseif not allowed[f[1]] then
    local again = f[9] == op
    out[n] = { again and 1 or 0, redis.call("HGETALL", k), flag(again and f[1] == to, id) }
  else
    local queue, priority, runAt = f[2], tonumber(f[3]), tonumber(f[4])
    unplace(id, f[1], queue, priority, runAt, tonumber(f[5]) or 0)
    redis.call("HDEL", k, "leaseOwner", "leaseUntil")
    local finishedAt = nil
    if f[1] == "processing" then
      if to ~= "enqueued" then cancelled[#cancelled + 1] = id end
      if f[10] then freeSlot(f[10]) end
    elseif f[1] == "awaiting" then
      dropEdges(id, f[11])
    end
    if to == "enqueued" then
      runAt = now
      redis.call("HDEL", k, "error", "finishedAt", "progress", "result")
      redis.call("HSET", k, "attempts", "0", "runAt", nowS)
      zadd(K_RUNAT, nowS, id)
    else
      finishedAt = now
      redis.call("HSET", k, "finishedAt", nowS)
      if to == "failed" then
        if err ~= "" then redis.call("HSET", k, "error", err) end
        tally("failed")
      end
    end
    local hist, hn = pushHistory(f[7], f[8], e)
    local seq = place(id, to, queue, priority, runAt, nil, finishedAt)
    redis.call("HSET", k, "state", to, "leaseToken", I(tonumber(f[6]) + 1), "updatedAt", nowS, "history", hist, "hn", I(hn), "seq", I(seq), "op", op)
    -- After the job's own state changed, so that it is not the one sent back.
    if f[1] == "enqueued" and f[10] then unparkOne(f[10]) end
    touch(id, nowS)
    count(queue, f[1], -1)
    count(queue, to, 1)
    -- Read before finish(): its pruning may remove a job just deleted.
    out[n] = { 1, redis.call("HGETALL", k), flag(true, id) }
  end
end
if cancelled[1] then
  redis.call("PUBLISH", B .. "cancel", cjson.encode({ ids = cancelled, reason = cjson.decode(e).reason }))
end
finish(now)
return out
