--[[
  common.lua: helpers shared by the scripts. Not a script: scripts/embed-lua.ts
  pastes it where a script says `--@include lib/common.lua`.

  Input every script shares: KEYS[1] = the base "<prefix>{<tag>}:". Every
  other key is the base plus a suffix, so all keys a script touches carry
  the same hash tag and sit in one Redis Cluster slot.

  Key layout (suffixes of the base):
    job:<id>            hash    the record (fields: see codec.ts)
    ready:<queue>       zset    enqueued jobs, all scored 0; the member is
                                7 digits (1e6 - priority) .. 16 digits runAt
                                .. 16 digits seq .. id, so member order is
                                priority desc, runAt, insertion. A score
                                cannot hold that: priority (21 bits) + runAt
                                (42 bits) + a sequence exceed a double's 53.
    delayed             zset    scheduled + awaiting_retry; score runAt,
                                member 16 digits seq .. id (FIFO among equals)
    paused              set     paused queues (set-paused.lua); read by each
                                claim and promote, usually absent
    parked:<queue>      zset    due jobs of a paused queue, taken out of
                                `delayed` (still scheduled / awaiting_retry,
                                same score and member) so that they are not
                                read again by every claim; put back on resume
    processing          zset    score leaseUntil, member id
    conc                hash    concurrencyKey -> its jobs in processing
                                (absent at 0); claim.lua adds, freeSlot
                                takes away, each in the script that moves
                                the job into or out of processing
    conc:parked:<key>   zset    enqueued jobs of a full concurrency key,
                                taken out of their ready:<queue> by a claim
                                (same member, score 0, so the best first),
                                so that later claims do not read them again;
                                freeSlot puts one back per slot freed. A
                                member is stale once the job's state or seq
                                has changed, and is dropped when met
    rate                hash    rateKey -> its next start, numbered
                                window * limit + starts given in it
    rate:forget         zset    rateKey scored by when its count may be
                                forgotten: RATE_COUNT_KEEP_MS past the
                                window of its last start (claim.lua);
                                reclaim.lua drops both entries then
    finished            zset    succeeded + failed + deleted; score finishedAt
                                (a job kept past the retention because jobs
                                wait for it is scored again at that prune)
    awaiting            zset    awaiting jobs; score createdAt (the sweep's page)
    deps:<id>           set     dependency edges (flows, continuations): the
                                awaiting jobs that wait for job <id>, written
                                by the insert of each waiter (its flow's
                                dependsOn) and taken away when it leaves
                                `awaiting` (transition, or a hard delete), so
                                the set lives no longer than its waiters. A
                                finished job with a deps set is not pruned.
                                <id> need not exist
    waiters:<event>     zset    durable steps' event-waiter index: job ids
                                that may wait for <event>, scored by when
                                the note expires (waiters.lua); the key
                                expires with its latest member
    idx:created|updated|runat
                        zset    score = that time, member id (list pages)
    unique              hash    uniqueKey -> id (the holder; a holder whose
                                uniqueUntil has passed gives the key up to
                                the next insert with it, see insert.lua)
    counts              hash    state -> jobs
    qcounts             hash    "<queue>:<state>" -> jobs (0 is deleted)
    tp:m / tp:h         hash    "s:<bucket>" / "f:<bucket>" -> succeeded / failed
    tp:m:idx / tp:h:idx zset    bucket starts, to drop buckets past the window
    seq                 string  placement counter (read once per call, see nextSeq)
    claims / claims:exp hash / zset   recent claim ids, to answer a retried
                                claim with the same jobs (dropped after their
                                lease ends, by the next claim that takes jobs)
    recurring, recurring:created, recurring:slot
                        hash    id -> definition JSON / createdAt / lastSlot
    estimates           hash    job name -> expected run time in ms (read
                                and written by commands, not by a script)
    wake                channel insert.lua publishes the queues it filled
    cancel              channel transition.lua publishes the running jobs it
                                cancelled or deleted, and the reason
    meta                hash    schema version

  Time: every "now" comes from the caller (ARGV); no script reads TIME.
  Numbers go out through I(): Lua's own tostring keeps 14 digits only.

  Cost: a script's work is per job, so per-job work is kept to what the
  job needs: index writes, counters and deletions are collected and sent
  once per call. What each choice saves: docs/decisions/redis-script-costs.md.
]]
local B = KEYS[1]
local JOB = B .. "job:"
-- Keys written once per job are named once per call, not concatenated per job.
local K_PROCESSING, K_FINISHED, K_DELAYED = B .. "processing", B .. "finished", B .. "delayed"
local K_UPDATED, K_CREATED, K_RUNAT = B .. "idx:updated", B .. "idx:created", B .. "idx:runat"
-- Awaiting jobs by creation time (an awaiting job's runAt is its creation
-- time): the maintenance sweep's page reads this, not the whole index.
local K_AWAITING = B .. "awaiting"
-- HISTORY_LIMIT in src/core/job.ts and RATE_COUNT_KEEP_MS in
-- src/core/driver.ts (test/redis/scripts.test.ts keeps them equal).
local HISTORY_LIMIT = 50
local RATE_COUNT_KEEP_MS = 600000

local DELAYED = { scheduled = true, awaiting_retry = true }
local FINISHED = { succeeded = true, failed = true, deleted = true }

local function I(n)
  return string.format("%.0f", n)
end

-- I() for values that recur within a call (attempts, tokens, history
-- lengths, seq 0, now): a table lookup per job instead of a string.format.
local formatted = {}
local function IC(n)
  local s = formatted[n]
  if not s then
    s = I(n)
    formatted[n] = s
  end
  return s
end

local function clamp(n, lo, hi)
  if n < lo then return lo elseif n > hi then return hi end
  return n
end

local function readyMember(priority, runAt, seq, id)
  return string.format("%07.0f%016.0f%016.0f", clamp(1000000 - priority, 0, 2000000), clamp(runAt, 0, 9999999999999999), seq) .. id
end
local READY_ID_AT = 40

local function delayedMember(seq, id)
  return string.format("%016.0f", seq) .. id
end
local DELAYED_ID_AT = 17

-- Index writes are collected and sent once per call: one ZADD or ZREM with
-- many members costs about what one with a single member does. Removals go
-- before additions; a script that reads an index it wrote flushes first.
local zadds, zrems, zkeys = {}, {}, {}
local function zadd(key, score, member)
  local t = zadds[key]
  if not t then
    t = {}
    zadds[key] = t
    zkeys[#zkeys + 1] = key
  end
  local n = #t
  t[n + 1], t[n + 2] = score, member
end
local function zrem(key, member)
  local t = zrems[key]
  if not t then
    t = {}
    zrems[key] = t
    zkeys[#zkeys + 1] = key
  end
  t[#t + 1] = member
end
local function batched(cmd, key, t)
  for i = 1, #t, 4000 do
    redis.call(cmd, key, unpack(t, i, math.min(i + 3999, #t)))
  end
end
-- Job keys removeJob deletes go with the index writes, in one DEL, not a
-- call per job.
local dels = {}
local function flushIndexes()
  if dels[1] then
    for i = 1, #dels, 4000 do
      redis.call("DEL", unpack(dels, i, math.min(i + 3999, #dels)))
    end
    dels = {}
  end
  for _, key in ipairs(zkeys) do
    if zrems[key] then batched("ZREM", key, zrems[key]) end
  end
  for _, key in ipairs(zkeys) do
    if zadds[key] then batched("ZADD", key, zadds[key]) end
  end
  zadds, zrems, zkeys = {}, {}, {}
end

-- State counters are summed here and written once per call.
local countDeltas = {}
local queueDeltas = {}
local function count(queue, state, d)
  countDeltas[state] = (countDeltas[state] or 0) + d
  local q = queueDeltas[queue]
  if not q then
    q = {}
    queueDeltas[queue] = q
  end
  q[state] = (q[state] or 0) + d
end

local tallies = {}
local function tally(kind)
  tallies[kind] = (tallies[kind] or 0) + 1
end

local function flushCounts()
  for f, d in pairs(countDeltas) do
    if d ~= 0 then redis.call("HINCRBY", B .. "counts", f, I(d)) end
  end
  for queue, q in pairs(queueDeltas) do
    for state, d in pairs(q) do
      local f = queue .. ":" .. state
      if d ~= 0 and redis.call("HINCRBY", B .. "qcounts", f, I(d)) <= 0 then
        redis.call("HDEL", B .. "qcounts", f)
      end
    end
  end
  countDeltas, queueDeltas = {}, {}
end

-- Throughput buckets: 24 h of minutes and 31 days of hours, as memory keeps.
-- A bucket is indexed when it is made: a count that comes back equal to the
-- increment is the first of its kind in that bucket, and only then is the
-- bucket looked up in the index (two calls of the ~20 a completion makes).
local function flushTally(now)
  if next(tallies) == nil then return end
  for _, spec in ipairs({ { "tp:m", 60000, 1440 }, { "tp:h", 3600000, 744 } }) do
    local key, size = B .. spec[1], spec[2]
    local at = math.floor(now / size) * size
    local atS, fresh = I(at), false
    for kind, n in pairs(tallies) do
      if redis.call("HINCRBY", key, string.sub(kind, 1, 1) .. ":" .. atS, I(n)) == n then fresh = true end
    end
    if fresh and redis.call("ZADD", key .. ":idx", "NX", atS, atS) == 1 then
      local cutoff = "(" .. I(at - spec[3] * size)
      local old = redis.call("ZRANGEBYSCORE", key .. ":idx", "-inf", cutoff)
      for _, b in ipairs(old) do
        redis.call("HDEL", key, "s:" .. b, "f:" .. b)
      end
      if #old > 0 then redis.call("ZREMRANGEBYSCORE", key .. ":idx", "-inf", cutoff) end
    end
  end
  tallies = {}
end

-- History is one field: JSON entries joined by "\n" (JSON text never holds a
-- raw newline), so appending and dropping the oldest are string operations.
local function pushHistory(hist, hn, e)
  if not hist or hist == "" then
    hist, hn = e, 1
  else
    hist, hn = hist .. "\n" .. e, (tonumber(hn) or 0) + 1
  end
  while hn > HISTORY_LIMIT do
    local nl = string.find(hist, "\n", 1, true)
    if not nl then break end
    hist, hn = string.sub(hist, nl + 1), hn - 1
  end
  return hist, hn
end

-- reasonJson / workerJson are JSON strings (already quoted) or nil.
local function entry(state, now, reasonJson, workerJson)
  local e = '{"state":"' .. state .. '","at":' .. I(now)
  if reasonJson then e = e .. ',"reason":' .. reasonJson end
  if workerJson then e = e .. ',"worker":' .. workerJson end
  return e .. "}"
end

-- "ready:<queue>" key names, made once per queue and call.
local readyKeys = {}
local function readyKey(queue)
  local k = readyKeys[queue]
  if not k then
    k = B .. "ready:" .. queue
    readyKeys[queue] = k
  end
  return k
end

-- "parked:<queue>": due jobs of a paused queue (see promote).
local function parkedKey(queue)
  return B .. "parked:" .. queue
end

-- Takes a job out of the index its state keeps it in. A delayed job may be
-- parked (its queue paused): its member goes from both, as a ZREM of a
-- member or key that is not there costs one lookup, less than reading
-- where the job is.
local function unplace(id, state, queue, priority, runAt, seq)
  if state == "enqueued" then
    zrem(readyKey(queue), readyMember(priority, runAt, seq, id))
  elseif DELAYED[state] then
    local m = delayedMember(seq, id)
    zrem(K_DELAYED, m)
    zrem(parkedKey(queue), m)
  elseif state == "processing" then
    zrem(K_PROCESSING, id)
  elseif FINISHED[state] then
    zrem(K_FINISHED, id)
  elseif state == "awaiting" then
    zrem(K_AWAITING, id)
  end
end

-- Placement sequence: the counter is read once per call and written back
-- by finish(), not INCRed per placed job (a call per job). Every script
-- that places jobs ends with finish().
local seqAt, seqFrom = nil, nil
local function nextSeq()
  if not seqAt then
    seqAt = tonumber(redis.call("GET", B .. "seq")) or 0
    seqFrom = seqAt
  end
  seqAt = seqAt + 1
  return seqAt
end
local function flushSeq()
  if seqAt and seqAt ~= seqFrom then
    redis.call("SET", B .. "seq", I(seqAt))
    seqFrom = seqAt
  end
end

-- Puts a job into the index its new state needs. Returns the seq to store
-- on the job (enqueued and delayed entries are found again through it).
local function place(id, state, queue, priority, runAt, leaseUntil, finishedAt)
  if state == "enqueued" then
    local seq = nextSeq()
    zadd(readyKey(queue), "0", readyMember(priority, runAt, seq, id))
    return seq
  elseif DELAYED[state] then
    local seq = nextSeq()
    zadd(K_DELAYED, I(runAt), delayedMember(seq, id))
    return seq
  elseif state == "processing" then
    zadd(K_PROCESSING, IC(leaseUntil), id)
  elseif FINISHED[state] then
    zadd(K_FINISHED, IC(finishedAt), id)
  elseif state == "awaiting" then
    zadd(K_AWAITING, I(runAt), id)
  end
  return 0
end

-- `now` as a string (I(now)): it is the same for every job of a call.
local function touch(id, nowS)
  zadd(K_UPDATED, nowS, id)
end

-- Concurrency keys: each key's count of processing jobs is read once per
-- call (HGET), kept here as jobs come and go, and written back by finish().
local activeAt, activeDirty = {}, {}
local function activeCount(ckey)
  local n = activeAt[ckey]
  if not n then
    n = tonumber(redis.call("HGET", B .. "conc", ckey)) or 0
    activeAt[ckey] = n
  end
  return n
end
local function addActive(ckey, d)
  activeAt[ckey] = activeCount(ckey) + d
  activeDirty[ckey] = true
end
local function flushActive()
  for ckey in pairs(activeDirty) do
    local n = activeAt[ckey]
    if n > 0 then
      redis.call("HSET", B .. "conc", ckey, I(n))
    else
      redis.call("HDEL", B .. "conc", ckey)
    end
  end
  activeDirty = {}
end

-- "conc:parked:<key>": jobs a claim set aside while their key was full.
local function concParkedKey(ckey)
  return B .. "conc:parked:" .. ckey
end

-- The best parked job of `ckey` that is still waiting as it was parked
-- (enqueued, same ready member) goes back to its ready queue under that
-- member, so it keeps its place; stale members met on the way are dropped.
-- Called once per freed slot (freeSlot), and when a waiting job of the key
-- leaves the ready queue by another way than a claim (deleted, put off by
-- its rate limit): it may be the one a freed slot sent back, and the slot
-- would otherwise wait for the next job of the key to finish.
local function unparkOne(ckey)
  local pk = concParkedKey(ckey)
  while true do
    local ms = redis.call("ZRANGE", pk, "0", "0")
    local m = ms[1]
    if not m then break end
    redis.call("ZREMRANGEBYRANK", pk, "0", "0")
    local id = string.sub(m, READY_ID_AT)
    local g = redis.call("HMGET", JOB .. id, "state", "queue", "priority", "runAt", "seq")
    if g[1] == "enqueued" and readyMember(tonumber(g[3]), tonumber(g[4]), tonumber(g[5]) or 0, id) == m then
      -- Written now, not with the batched index writes: those send removals
      -- first, so a later step of the call that takes the job out of its
      -- ready queue (a transition of the same job) must find it there.
      redis.call("ZADD", readyKey(g[2]), "0", m)
      break
    end
  end
end

-- A job with concurrency key `ckey` left processing: the count goes down
-- and one parked job goes back (unparkOne). One per slot: the claim
-- decides whether it may run.
local function freeSlot(ckey)
  addActive(ckey, -1)
  unparkOne(ckey)
end

-- Dependency edges (flows): "deps:<id>" holds the awaiting jobs that wait
-- for job <id>. A waiter's edges are the ids of its flow's dependsOn (the
-- flow field, JSON written by codec.ts; ids are strings, which cjson reads
-- back byte for byte).
local function depsKey(id)
  return B .. "deps:" .. id
end
local function addEdges(waiter, flowJson)
  for _, dep in ipairs(cjson.decode(flowJson).dependsOn) do
    redis.call("SADD", depsKey(dep), waiter)
  end
end
-- The waiter leaves `awaiting`: its edges go (an emptied set is gone with them).
local function dropEdges(waiter, flowJson)
  if not flowJson then return end
  for _, dep in ipairs(cjson.decode(flowJson).dependsOn) do
    redis.call("SREM", depsKey(dep), waiter)
  end
end
local function hasDependents(id)
  return redis.call("EXISTS", depsKey(id)) == 1
end

-- Hard-deletes a job and every index entry and counter it has (the key and
-- the index entries with the next flushIndexes). `unlisted`: the caller
-- has already taken the id out of `finished` (prune does, by rank).
local function removeJob(id, unlisted)
  local k = JOB .. id
  -- A finished job's only state index is `finished`: priority, runAt and seq
  -- (to find its ready or delayed entry) are read only for a job in another
  -- state, which prune never meets, so prune reads three fields, not six.
  local f = redis.call("HMGET", k, "state", "queue", "uniqueKey")
  local state, queue = f[1], f[2]
  if state then
    if not FINISHED[state] then
      local g = redis.call("HMGET", k, "priority", "runAt", "seq", "concurrencyKey", "flow")
      unplace(id, state, queue, tonumber(g[1]), tonumber(g[2]), tonumber(g[3]) or 0)
      if state == "processing" and g[4] then freeSlot(g[4]) end
      -- A purged waiter takes its edges along: no deps set outlives its waiters.
      if state == "awaiting" then dropEdges(id, g[5]) end
    end
    count(queue, state, -1)
    if f[3] and redis.call("HGET", B .. "unique", f[3]) == id then
      redis.call("HDEL", B .. "unique", f[3])
    end
    -- DEL, not UNLINK: a job hash (~16 fields) is below the size UNLINK
    -- hands to the background thread, so both free it here, at the same cost.
    dels[#dels + 1] = k
  end
  if not unlisted then zrem(K_FINISHED, id) end
  zrem(K_CREATED, id)
  zrem(K_UPDATED, id)
  zrem(K_RUNAT, id)
  return state ~= false
end

-- Retention: finished jobs older than ttl (0 = no age limit) and the oldest
-- past maxFinished. `finished` is ordered by finishedAt, so both are a head
-- of it and together the longer head; at most `budget` go per call, so one
-- call stays short and a backlog is worked off over the next calls. One
-- ZREMRANGEBYRANK takes them out of `finished`: a ZREM per member would
-- cost a lookup and a skiplist search each. A job that jobs wait for (its
-- deps set exists) stays, its outcome deciding theirs: it goes back to the
-- end of `finished`, scored now, to be looked at again by a later prune
-- (an EXISTS per job looked at, the ZADD only for those kept).
local function prune(now, maxFinished, ttl, budget)
  flushIndexes()
  local n = redis.call("ZCARD", K_FINISHED) - maxFinished
  if ttl > 0 and n < budget then
    local old = redis.call("ZCOUNT", K_FINISHED, "-inf", "(" .. I(now - ttl))
    if old > n then n = old end
  end
  if n > budget then n = budget end
  if n <= 0 then return 0 end
  local ids = redis.call("ZRANGE", K_FINISHED, 0, n - 1)
  redis.call("ZREMRANGEBYRANK", K_FINISHED, 0, n - 1)
  local nowS, removed = I(now), 0
  for _, id in ipairs(ids) do
    if hasDependents(id) then
      zadd(K_FINISHED, nowS, id)
    else
      removeJob(id, true)
      removed = removed + 1
    end
  end
  flushIndexes()
  return removed
end

-- The paused queues (set-paused.lua) as a set, or nil when none is: one
-- SMEMBERS of a key that is usually absent, the only cost pausing adds to
-- a claim or a promotion while no queue is paused.
local function pausedSet()
  local qs = redis.call("SMEMBERS", B .. "paused")
  if not qs[1] then return nil end
  local s = {}
  for _, q in ipairs(qs) do s[q] = true end
  return s
end

-- Moves up to `limit` due scheduled / awaiting_retry jobs to their ready
-- queue. A due job of a queue in `paused` (pausedSet) is parked instead:
-- moved from `delayed` to `parked:<queue>` in its state, so it neither
-- becomes claimable nor stays at the head of `delayed`, where every later
-- claim would read it again and, once a paused queue had `limit` due jobs,
-- no other queue's due job would be promoted at all. Parking is work done
-- once per job; at most about `limit` are parked per call, the rest by the
-- next calls. set-paused.lua puts them back when the queue resumes.
local function promote(now, limit, paused)
  local nowS, n, parked = I(now), 0, 0
  while true do
    local want = limit - n
    local ms = redis.call("ZRANGEBYSCORE", K_DELAYED, "-inf", nowS, "LIMIT", "0", tostring(want))
    if #ms == 0 then break end
    batched("ZREM", K_DELAYED, ms)
    local parkedNow = 0
    for _, m in ipairs(ms) do
      local id = string.sub(m, DELAYED_ID_AT)
      local k = JOB .. id
      local f = redis.call("HMGET", k, "state", "queue", "priority", "runAt", "history", "hn")
      if DELAYED[f[1]] then
        if paused and paused[f[2]] then
          zadd(parkedKey(f[2]), f[4], m)
          parkedNow = parkedNow + 1
        else
          local hist, hn = pushHistory(f[5], f[6], entry("enqueued", now, f[1] == "scheduled" and '"due"' or '"retry due"'))
          local seq = place(id, "enqueued", f[2], tonumber(f[3]), tonumber(f[4]))
          redis.call("HSET", k, "state", "enqueued", "updatedAt", nowS, "history", hist, "hn", IC(hn), "seq", I(seq))
          touch(id, nowS)
          count(f[2], f[1], -1)
          count(f[2], "enqueued", 1)
          n = n + 1
        end
      end
    end
    parked = parked + parkedNow
    -- Another page only when parking took places this one had room for.
    if parkedNow == 0 or #ms < want or parked >= limit then break end
  end
  flushIndexes()
  return n
end

-- The shared tail of every write: indexes, counters, throughput, retention.
local function finish(now)
  flushSeq()
  flushIndexes()
  flushTally(now)
  prune(now, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
  flushCounts()
  flushActive()
end
