--[[
  insert.lua: inserts new jobs, in order. A job whose id exists is not
  inserted (so a retried call creates nothing twice). A job whose uniqueKey
  is held by another job:
  - the holder's uniqueUntil is at or before now: the key is free; the
    holder keeps its hash but loses uniqueKey and uniqueUntil, and the job
    is inserted with the key;
  - else, a debounce job and a holder still waiting (scheduled or enqueued):
    the holder takes the job's args, metadata, runAt, uniqueUntil and the
    state its runAt gives (scheduled when after now, else enqueued), moves
    between the delayed and ready indexes, and gets a history entry
    "debounced"; nothing is inserted;
  - else, a debounce job: the holder (running or finished) loses the key and
    the job is inserted with it;
  - else the job is not inserted and the answer is the holder's id.
  Jobs are taken one after another, so within a call the last debounce wins.

  A job created in state `awaiting` with a `flow` (flows, continuations)
  gets its dependency edges with it: its id is added to deps:<dep> for each
  id of the flow's dependsOn (whether that job exists or not). A job not
  created writes no edge.

  Resent calls (the HTTP client resends a request whose connection failed,
  and the first may have run): they answer the same ids, and change nothing
  the first did. A job the first call inserted holds its key or its id
  exists. A holder the first call debounced keeps the call id in `dop`
  (ARGV[5], one per script call): a debounce job whose holder carries this
  call's id, set by an earlier run of the call rather than by this one, is
  answered as replaced without being applied again, even when the holder
  has started meanwhile. What is not recognised: another call that
  debounced the same key between the first run and the resend, or took the
  key over; the resend then debounces again, as a call sent after that one.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] maxFinished   ARGV[3] finished TTL ms (0 = none)   ARGV[4] prune budget
  ARGV[5]  call id for debounce jobs ("" when the call has none)
  ARGV[6]  number of jobs, then per job:
           uniqueKey ("" = none), debounce ("1" or ""), priority, runAt,
           createdAt (as integers, for the indexes), the values of
           REQUIRED_FIELDS (codec.ts) in order, n, then n field/value pairs
           of the optional fields it has (uniqueUntil and metadata among them)
  Output:  flat array: id, status, id, status, ... in input order; status 1:
           created, 0: an existing job's id (same id or uniqueKey), 2: that
           existing job took the job's arguments and due time (debounce)
  Also:    PUBLISH "<base>wake" with {queue: earliest runAt} of the jobs created
           or debounced, so subscribed servers in other processes wake at once
]]
--@include lib/common.lua

-- The values of the fields every job has come in the order of
-- REQUIRED_FIELDS in codec.ts, without their names: Redis's Lua hashes
-- every byte of every argument, so each argument costs.
local NREQ = 14

local now, op = tonumber(ARGV[1]), ARGV[5]
local nowS = I(now)
local K_UNIQUE = B .. "unique"
local out = {}
local woken, anyWoken = {}, false
local function wake(queue, runAt)
  if woken[queue] == nil or runAt < woken[queue] then woken[queue] = runAt end
  anyWoken = true
end

-- Holders this run of the call debounced: a later job of the same call
-- debounces them again (the last wins); a `dop` equal to the call id on
-- any other holder was written by an earlier run of this call.
local debouncedHere = {}

-- The holder (job key hk) gives up uk. The entry in `unique` goes too: the
-- job that takes the key writes its own, but may turn out not to be
-- inserted (its id exists).
local function release(uk, hk)
  redis.call("HDEL", hk, "uniqueKey", "uniqueUntil")
  redis.call("HDEL", K_UNIQUE, uk)
end

-- Whose the key is for a job `id`: the holder's id and what to do with it
-- ("keep": answer it, "replace": debounce it, "replaced": an earlier run of
-- this call debounced it), or false when the key is free for the job.
local function keyHolder(uk, id, debounce)
  local h = redis.call("HGET", K_UNIQUE, uk)
  if not h then return false end
  -- The job itself: an earlier run of this call inserted it.
  if h == id then return h, "keep" end
  local hk = JOB .. h
  local f = redis.call("HMGET", hk, "state", "uniqueUntil", "dop")
  if not f[1] then return false end
  if debounce and op ~= "" and f[3] == op and not debouncedHere[h] then return h, "replaced" end
  if f[2] and tonumber(f[2]) <= now then
    release(uk, hk)
    return false
  end
  if not debounce then return h, "keep" end
  if f[1] == "scheduled" or f[1] == "enqueued" then return h, "replace" end
  -- Started or finished: the newer job is one of its own, and takes the key.
  release(uk, hk)
  return false
end

-- The holder `h` takes a debounce job's args, runAt (as a string), and the
-- optional fields metadata and uniqueUntil found in ARGV[from .. to].
local function debounceInto(h, args, runAtS, from, to)
  local hk = JOB .. h
  local f = redis.call("HMGET", hk, "state", "queue", "priority", "runAt", "seq", "history", "hn")
  local queue, priority, runAt = f[2], tonumber(f[3]), tonumber(runAtS)
  local state = runAt > now and "scheduled" or "enqueued"
  -- The holder may have been placed by this very call, its index entry not
  -- yet written: written first, so that taking it out below finds it.
  flushIndexes()
  unplace(h, f[1], queue, priority, tonumber(f[4]), tonumber(f[5]) or 0)
  local seq = place(h, state, queue, priority, runAt)
  local hist, hn = pushHistory(f[6], f[7], entry(state, now, '"debounced"'))
  local set = { "args", args, "runAt", runAtS, "state", state, "updatedAt", nowS, "history", hist, "hn", IC(hn), "seq", I(seq), "dop", op }
  local metadata, uniqueUntil = false, false
  for p = from, to, 2 do
    if ARGV[p] == "metadata" then
      metadata = true
      set[#set + 1], set[#set + 2] = "metadata", ARGV[p + 1]
    elseif ARGV[p] == "uniqueUntil" then
      uniqueUntil = true
      set[#set + 1], set[#set + 2] = "uniqueUntil", ARGV[p + 1]
    end
  end
  if not metadata then redis.call("HDEL", hk, "metadata") end
  if not uniqueUntil then redis.call("HDEL", hk, "uniqueUntil") end
  redis.call("HSET", hk, unpack(set))
  zadd(K_RUNAT, runAtS, h)
  touch(h, nowS)
  count(queue, f[1], -1)
  count(queue, state, 1)
  debouncedHere[h] = true
  wake(queue, runAt)
end

local i = 7
for _ = 1, tonumber(ARGV[6]) do
  local uk, debounce, priority, runAt, createdAt = ARGV[i], ARGV[i + 1] == "1", tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4]
  local v = i + 5 -- the first required value
  local id, queue, state = ARGV[v], ARGV[v + 3], ARGV[v + 5]
  local first, np = v + NREQ + 1, tonumber(ARGV[v + NREQ])
  i = first + np * 2
  local holder, how = false, nil
  if uk ~= "" then holder, how = keyHolder(uk, id, debounce) end
  local k = JOB .. id
  if how == "replace" then
    debounceInto(holder, ARGV[v + 2], runAt, first, i - 1)
    out[#out + 1] = holder
    out[#out + 1] = 2
  elseif how == "replaced" then
    out[#out + 1] = holder
    out[#out + 1] = 2
  elseif holder then
    out[#out + 1] = holder
    out[#out + 1] = 0
  elseif redis.call("EXISTS", k) == 1 then
    out[#out + 1] = id
    out[#out + 1] = 0
  else
    if uk ~= "" then redis.call("HSET", K_UNIQUE, uk, id) end
    local seq = place(id, state, queue, priority, tonumber(runAt))
    redis.call("HSET", k, "seq", I(seq), "id", id, "name", ARGV[v + 1], "args", ARGV[v + 2], "queue", queue,
      "priority", ARGV[v + 4], "state", state, "attempts", ARGV[v + 6], "maxAttempts", ARGV[v + 7],
      "createdAt", ARGV[v + 8], "updatedAt", ARGV[v + 9], "runAt", ARGV[v + 10], "leaseToken", ARGV[v + 11],
      "history", ARGV[v + 12], "hn", ARGV[v + 13], unpack(ARGV, first, i - 1))
    if state == "awaiting" then
      for p = first, i - 1, 2 do
        if ARGV[p] == "flow" then addEdges(id, ARGV[p + 1]) end
      end
    end
    zadd(K_CREATED, createdAt, id)
    zadd(K_UPDATED, createdAt, id)
    zadd(K_RUNAT, runAt, id)
    count(queue, state, 1)
    wake(queue, tonumber(runAt))
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
if anyWoken then redis.call("PUBLISH", B .. "wake", cjson.encode(woken)) end
finish(now)
return out
