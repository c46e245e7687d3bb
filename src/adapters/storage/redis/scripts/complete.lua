--[[
  complete.lua: applies outcomes, each only while the job is processing under
  the outcome's token (fencing). An outcome whose job already left processing
  with that same token for that same state was applied by an earlier try of
  this call: it reports applied again and changes nothing.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] maxFinished   ARGV[3] finished TTL ms   ARGV[4] prune budget
  ARGV[5]  number of outcomes, then 7 per outcome:
           id, token, state (succeeded | failed | awaiting_retry | enqueued),
           runAt ("" = now), result JSON ("" = none), error JSON ("" = none),
           history entry JSON
  Output:  array of 1 (applied) / 0 (lost), in input order
]]
--@include lib/common.lua

local now = tonumber(ARGV[1])
local nowS = I(now)
local out = {}
for j = 0, tonumber(ARGV[5]) - 1 do
  local a = 6 + j * 7
  local id, token, to = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  local runAtArg, result, err, e = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  local k = JOB .. id
  local f = redis.call("HMGET", k, "state", "leaseToken", "attempts", "queue", "priority", "history", "hn")
  if not f[1] or tonumber(f[2]) ~= token then
    out[#out + 1] = 0
  elseif f[1] ~= "processing" then
    out[#out + 1] = (f[1] == to) and 1 or 0
  else
    local queue, priority = f[4], tonumber(f[5])
    -- Every outcome either finishes the job or sets a new runAt: the stored runAt is never read.
    local runAt, finishedAt = nil, nil
    zrem(K_PROCESSING, id)
    local set = { "state", to, "updatedAt", nowS }
    local del = { "leaseOwner", "leaseUntil" }
    if to == "succeeded" then
      if result ~= "" then
        set[#set + 1], set[#set + 2] = "result", result
      else
        del[#del + 1] = "result"
      end
      del[#del + 1] = "error"
      finishedAt = now
      tally("succeeded")
    elseif to == "failed" then
      finishedAt = now
      tally("failed")
    elseif to == "awaiting_retry" then
      runAt = runAtArg ~= "" and tonumber(runAtArg) or now
    else -- enqueued: a release gives the attempt back
      local attempts = tonumber(f[3]) - 1
      if attempts < 0 then attempts = 0 end
      set[#set + 1], set[#set + 2] = "attempts", IC(attempts)
      runAt = now
    end
    if err ~= "" and (to == "failed" or to == "awaiting_retry") then
      set[#set + 1], set[#set + 2] = "error", err
    end
    if finishedAt then
      set[#set + 1], set[#set + 2] = "finishedAt", nowS
    else
      local runAtS = runAt == now and nowS or I(runAt)
      set[#set + 1], set[#set + 2] = "runAt", runAtS
      zadd(K_RUNAT, runAtS, id)
    end
    local hist, hn = pushHistory(f[6], f[7], e)
    local seq = place(id, to, queue, priority, runAt, nil, finishedAt)
    set[#set + 1], set[#set + 2] = "history", hist
    set[#set + 1], set[#set + 2] = "hn", IC(hn)
    set[#set + 1], set[#set + 2] = "seq", IC(seq)
    redis.call("HSET", k, unpack(set))
    redis.call("HDEL", k, unpack(del))
    touch(id, nowS)
    count(queue, "processing", -1)
    count(queue, to, 1)
    out[#out + 1] = 1
  end
end
finish(now)
return out
