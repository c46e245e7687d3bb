--[[
  complete.lua: applies outcomes, each only while the job is processing under
  the outcome's token (fencing). An outcome whose job already left processing
  with that same token for that same state was applied by an earlier try of
  this call: it reports applied again and changes nothing.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] maxFinished   ARGV[3] finished TTL ms   ARGV[4] prune budget
  ARGV[5]  number of outcomes   ARGV[6] number of history entries, then
           per entry its state (succeeded | failed | awaiting_retry |
           enqueued) and its JSON, then per outcome: id, token, the number of
           its entry (1 = the first), then what the entry's state takes:
             succeeded       result JSON ("" = none)
             failed          error JSON ("" = none)
             awaiting_retry  runAt ("" = now), error JSON ("" = none)
             enqueued        "1" when the attempt stays counted, "" when
                             the release gives it back
             scheduled       runAt, then "1" / "" as for enqueued (a
                             durable step's suspension: due again at
                             runAt, the attempt given back, error kept)
  Output:  array of 1 (applied) / 0 (lost), in input order; 2 for an
           applied outcome that finished the job (succeeded, failed) while
           jobs wait for it (its deps:<id> set exists, see lib/common.lua),
           for the core to settle them

  A release (enqueued) keeps the job's runAt and placement sequence: it goes
  back under the ready member it was claimed from, so it keeps its place at
  the head of its queue, ahead of the jobs enqueued since (even within the
  same millisecond).

  Every applied outcome takes the job out of processing: a job with a
  concurrency key frees its slot, and one job parked on the key goes back
  to its queue (freeSlot in lib/common.lua). A resent outcome finds the
  job out of processing already and frees nothing twice.
]]
--@include lib/common.lua

local now = tonumber(ARGV[1])
local nowS = I(now)
local out = {}
local a = 7 + 2 * tonumber(ARGV[6])
for j = 1, tonumber(ARGV[5]) do
  local id, token, x = ARGV[a], tonumber(ARGV[a + 1]), 5 + 2 * tonumber(ARGV[a + 2])
  local to, e = ARGV[x], ARGV[x + 1]
  local runAtArg, result, err, counted = "", "", "", ""
  if to == "succeeded" then
    result, a = ARGV[a + 3], a + 4
  elseif to == "failed" then
    err, a = ARGV[a + 3], a + 4
  elseif to == "awaiting_retry" then
    runAtArg, err, a = ARGV[a + 3], ARGV[a + 4], a + 5
  elseif to == "scheduled" then
    runAtArg, counted, a = ARGV[a + 3], ARGV[a + 4], a + 5
  else
    counted, a = ARGV[a + 3], a + 4
  end
  local k = JOB .. id
  -- Only what every outcome needs; a release also reads attempts, priority, runAt and seq.
  local f = redis.call("HMGET", k, "state", "leaseToken", "queue", "history", "hn", "concurrencyKey")
  if not f[1] or tonumber(f[2]) ~= token then
    out[j] = 0
  elseif f[1] ~= "processing" then
    -- A resent outcome answers as the first run did, flag included.
    out[j] = (f[1] ~= to) and 0 or (FINISHED[to] and hasDependents(id)) and 2 or 1
  else
    local queue = f[3]
    local hist, hn = pushHistory(f[4], f[5], e)
    local hnS = IC(hn)
    zrem(K_PROCESSING, id)
    if to == "succeeded" then
      -- The usual outcome gets its HSET and HDEL spelled out, not a table of
      -- their arguments per job to unpack, which costs more. A past
      -- attempt's error goes, and so would a result (none is expected).
      if result ~= "" then
        redis.call("HSET", k, "state", to, "updatedAt", nowS, "finishedAt", nowS, "history", hist, "hn", hnS, "seq", "0", "result", result)
        redis.call("HDEL", k, "leaseOwner", "leaseUntil", "error")
      else
        redis.call("HSET", k, "state", to, "updatedAt", nowS, "finishedAt", nowS, "history", hist, "hn", hnS, "seq", "0")
        redis.call("HDEL", k, "leaseOwner", "leaseUntil", "result", "error")
      end
      zadd(K_FINISHED, nowS, id)
      tally(to)
    else
      local set = { "state", to, "updatedAt", nowS, "history", hist, "hn", hnS }
      if err ~= "" and to ~= "enqueued" then
        set[9], set[10] = "error", err
      end
      if to == "failed" then
        set[#set + 1], set[#set + 2] = "finishedAt", nowS
        set[#set + 1], set[#set + 2] = "seq", "0"
        zadd(K_FINISHED, nowS, id)
        tally(to)
      elseif to == "awaiting_retry" or to == "scheduled" then
        -- A new runAt: the stored one is never read.
        local runAt = runAtArg ~= "" and tonumber(runAtArg) or now
        local runAtS = runAt == now and nowS or I(runAt)
        local seq = place(id, to, queue, 0, runAt)
        set[#set + 1], set[#set + 2] = "runAt", runAtS
        set[#set + 1], set[#set + 2] = "seq", I(seq)
        zadd(K_RUNAT, runAtS, id)
        if to == "scheduled" and counted == "" then
          local attempts = tonumber(redis.call("HGET", k, "attempts")) - 1
          if attempts < 0 then attempts = 0 end
          set[#set + 1], set[#set + 2] = "attempts", IC(attempts)
        end
      else -- enqueued: back to its own place (see the header); the attempt goes back unless it counts
        local g = redis.call("HMGET", k, "attempts", "priority", "runAt", "seq")
        if counted == "" then
          local attempts = tonumber(g[1]) - 1
          if attempts < 0 then attempts = 0 end
          set[#set + 1], set[#set + 2] = "attempts", IC(attempts)
        end
        zadd(readyKey(queue), "0", readyMember(tonumber(g[2]), tonumber(g[3]), tonumber(g[4]) or 0, id))
      end
      redis.call("HSET", k, unpack(set))
      redis.call("HDEL", k, "leaseOwner", "leaseUntil")
    end
    touch(id, nowS)
    count(queue, "processing", -1)
    count(queue, to, 1)
    if f[6] then freeSlot(f[6]) end
    out[j] = (FINISHED[to] and hasDependents(id)) and 2 or 1
  end
end
finish(now)
return out
