--[[
  claim.lua: promotes due delayed jobs, then moves up to `limit` enqueued jobs
  of the given queues (in queue order, then priority, runAt, insertion) to
  processing under a lease: attempts + 1, leaseToken + 1. One script, so an
  idle poll is one request and concurrent claimers never share a job.

  Paused queues (set-paused.lua) are read in the same script, so a claim
  never takes a job of a queue paused before it ran: their due delayed jobs
  are parked, not promoted (promote in lib/common.lua), and their ready
  jobs are left where they are. While no queue is paused that costs one
  SMEMBERS of an absent key (test/redis/pause.test.ts counts it).

  Limits (see `claim` in src/core/driver.ts), decided per job as it comes
  up, in the order above:
  - a job whose concurrency key has `concurrencyLimit` jobs processing (the
    hash `conc`) is parked: moved from its ready queue to
    conc:parked:<key> under the same member, where no later claim reads it,
    until a job of the key leaves processing and freeSlot (lib/common.lua)
    puts it back. The claim goes on with the next job.
  - then a job with a rate key takes a start (takeStart): the one it holds
    for the current window (rateWindow), or the key's next (the hash
    `rate`). A start in a later window makes it scheduled for that window,
    with the start held in rateWindow; the claim goes on with the next job.
  Parking first means a parked job takes no start, so no window hands out
  more than the limit.

  A claim id makes a retried request (the HTTP driver retries network
  errors) answer with the jobs the first attempt took instead of taking
  more, which would strand those until their lease ran out.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  now   ARGV[2] maxFinished   ARGV[3] finished TTL ms   ARGV[4] prune budget
  ARGV[5]  limit   ARGV[6] lease ms   ARGV[7] owner   ARGV[8] owner as a JSON string
  ARGV[9]  most delayed jobs to promote first   ARGV[10] claim id ("" = none)
  ARGV[11] number of queues, then the queue names
  Output:  an array with one JSON text per claimed job, a positional array:
           [mask, id, name, args, queue, priority, attempts, maxAttempts,
            createdAt, updatedAt, runAt, leaseToken, history, leaseOwner,
            leaseUntil, then those of retry, timeoutMs, uniqueKey, uniqueUntil,
            concurrencyKey, concurrencyLimit, rateKey, rateLimit, rateInterval,
            rateWindow, metadata, finishedAt, result, error, progress, flow,
            steps the job has, in that order;
            bit i of mask (1, 2, 4 ...) says the i-th of them is there]
           (decodeClaimed in codec.ts reads it)

  Why a JSON text per job: a client pays per string of a reply, and a
  job's hash is ~30 short strings to send, parse and decode (over
  @upstash/redis each one base64-decoded too); a job's text is one. Not one
  text of all jobs: Redis's Lua hashes every byte of every string it makes,
  and table.concat makes its result by merging ever longer partial strings;
  a Lua array goes out as a RESP array and no string is made. For the same
  reason a job's text is one concatenation of pieces the claim already
  holds, with no string built on the way. Fields stored as JSON (args,
  history, result ...) are pasted in as they are, never re-encoded by
  cjson, which would rewrite numbers such as 1e21 or 0.1; the fields the
  claim sets go out from the values it wrote, not read back. Costs: see
  docs/decisions/redis-claim-reply.md.
]]
--@include lib/common.lua

-- HMGET fields. A claim reads the first CLAIM_FIELDS and sends the fields
-- it sets from what it wrote; a retried claim sets nothing and reads all.
local FIELDS = { "state", "attempts", "leaseToken", "history", "hn", "name", "args", "priority", "maxAttempts", "createdAt",
  "runAt", "retry", "timeoutMs", "uniqueKey", "uniqueUntil", "concurrencyKey", "concurrencyLimit", "rateKey", "rateLimit",
  "rateInterval", "rateWindow", "metadata", "finishedAt", "result", "error", "progress", "flow", "steps",
  "queue", "updatedAt", "leaseOwner", "leaseUntil" }
local CLAIM_FIELDS = 28
-- Positions in FIELDS.
local F_CKEY, F_CLIMIT, F_RKEY, F_RLIMIT, F_RINTERVAL, F_RWINDOW = 16, 17, 18, 19, 20, 21
local F_QUEUE, F_UPDATED, F_OWNER, F_LEASE = 29, 30, 31, 32
-- Optional fields stored as plain strings (the others are JSON or decimal numbers).
local PLAIN = { [14] = true, [16] = true, [18] = true }

-- Stored history entries ("\n"-joined) as JSON array items ("," between).
local function items(hist)
  if not string.find(hist, "\n", 1, true) then return hist end
  return (string.gsub(hist, "\n", ","))
end

-- The history the claim wrote (`stored` .. "\n" .. the new entry e, then
-- trimmed to HISTORY_LIMIT) as three pieces of the job's text, between
-- the array's brackets: the stored entries go in as they are, not copied
-- into a string of their own.
local function historyPieces(stored, hist, e)
  if hist == e then return "", "", e end
  if #hist == #stored + 1 + #e then return items(stored), ",", e end
  return items(hist), "", ""
end

-- The optional fields (FIELDS 12-28, usually all absent): the mask and the
-- present values, each after a comma. uniqueKey, concurrencyKey and rateKey
-- (PLAIN) are plain strings; the others are stored as JSON or as a decimal
-- number, valid JSON as they are.
local function optionalJson(f)
  local mask, s = 0, ""
  for i = 12, 28 do
    local v = f[i]
    if v then
      mask = mask + 2 ^ (i - 12)
      s = s .. "," .. (PLAIN[i] and cjson.encode(v) or v)
    end
  end
  return tostring(mask), s
end

-- Job names repeat within a batch: encode each once.
local nameJsons = {}
local function nameJson(name)
  if not name then return "null" end
  local s = nameJsons[name]
  if not s then
    s = cjson.encode(name)
    nameJsons[name] = s
  end
  return s
end

-- One job's positional array (see the header); h1 .. h2 .. h3 its history
-- items. A missing required field goes out as null, for the client to
-- report as a malformed job. One chain of .., not a table.concat: Lua
-- makes a chain one concatenation, which costs less.
local function jobJson(idJson, queueJson, f, attempts, token, updatedAt, h1, h2, h3, ownerJson, leaseUntil)
  local mask, optional = "0", ""
  for i = 12, 28 do
    if f[i] then
      mask, optional = optionalJson(f)
      break
    end
  end
  return "[" .. mask .. "," .. idJson .. "," .. nameJson(f[6]) .. "," .. (f[7] or "null") .. "," .. queueJson .. ","
    .. (f[8] or "null") .. "," .. attempts .. "," .. (f[9] or "null") .. "," .. (f[10] or "null") .. ","
    .. (updatedAt or "null") .. "," .. (f[11] or "null") .. "," .. token .. ",[" .. h1 .. h2 .. h3 .. "],"
    .. ownerJson .. "," .. (leaseUntil or "null") .. optional .. "]"
end

local now, limit, leaseMs = tonumber(ARGV[1]), tonumber(ARGV[5]), tonumber(ARGV[6])
local owner, ownerJson, claimId = ARGV[7], ARGV[8], ARGV[10]
local nq = tonumber(ARGV[11])

if claimId ~= "" then
  local prev = redis.call("HGET", B .. "claims", claimId)
  if prev then
    local out = {}
    for _, c in ipairs(cjson.decode(prev)) do
      local f = redis.call("HMGET", JOB .. c[1], unpack(FIELDS))
      if f[1] == "processing" and tonumber(f[3]) == c[2] then
        local queueJson, leaseOwner = f[F_QUEUE] and cjson.encode(f[F_QUEUE]) or "null", f[F_OWNER] and cjson.encode(f[F_OWNER]) or "null"
        local h = f[4] and items(f[4]) or ""
        out[#out + 1] = jobJson(cjson.encode(c[1]), queueJson, f, f[2] or "null", f[3], f[F_UPDATED], h, "", "", leaseOwner, f[F_LEASE])
      end
    end
    return out
  end
end

local paused = pausedSet()
promote(now, tonumber(ARGV[9]), paused)

-- Rate keys: each key's next start is read once per call and written back
-- at the end, as the concurrency counts are (activeCount in lib/common.lua),
-- with when the count may be forgotten (rate:forget): a key is in
-- rateForgetAt once it gave a start in this call.
local rateNext, rateForgetAt = {}, {}
local nowS = I(now)

-- Formats epoch ms as Date.prototype.toISOString does (years 0-9999), for
-- the history: Redis's Lua has no os.date. Days to a civil date after
-- Howard Hinnant's days_from_civil, inverted.
local function isoTime(ms)
  local s = math.floor(ms / 1000)
  local days = math.floor(s / 86400)
  local secs = s - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local day = doy - math.floor((153 * mp + 2) / 5) + 1
  local month = mp < 10 and mp + 3 or mp - 9
  local year = yoe + era * 400 + (month <= 2 and 1 or 0)
  return string.format("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year, month, day, math.floor(secs / 3600),
    math.floor(secs / 60) % 60, secs % 60, ms - s * 1000)
end

-- A rate-limited job about to be claimed (hash k, fields f) takes its
-- start. True when that start is in the current window: the held start it
-- used is cleared. Else the job waits, scheduled for its start's window,
-- and holds that start (rateWindow); it counts as leaving `queue`'s
-- enqueued jobs.
local function takeStart(id, k, f, queue)
  local interval, limit = tonumber(f[F_RINTERVAL]), tonumber(f[F_RLIMIT])
  local current = math.floor(now / interval)
  if f[F_RWINDOW] and tonumber(f[F_RWINDOW]) == current then
    redis.call("HDEL", k, "rateWindow")
    f[F_RWINDOW] = false
    return true
  end
  local rk = f[F_RKEY]
  local stored = rateNext[rk]
  if not stored then stored = tonumber(redis.call("HGET", B .. "rate", rk)) or 0 end
  local nextStart = math.max(stored, current * limit)
  local window = math.floor(nextStart / limit)
  rateNext[rk], rateForgetAt[rk] = nextStart + 1, (window + 1) * interval + RATE_COUNT_KEEP_MS
  if window == current then
    if f[F_RWINDOW] then
      redis.call("HDEL", k, "rateWindow")
      f[F_RWINDOW] = false
    end
    return true
  end
  local runAt = window * interval
  local runAtS = I(runAt)
  local reason = cjson.encode("rate limited (" .. rk .. "): starts at " .. isoTime(runAt))
  local hist, hn = pushHistory(f[4], f[5], entry("scheduled", now, reason))
  local seq = place(id, "scheduled", queue, 0, runAt)
  redis.call("HSET", k, "state", "scheduled", "runAt", runAtS, "rateWindow", I(window), "updatedAt", nowS, "history", hist,
    "hn", IC(hn), "seq", I(seq))
  zadd(K_RUNAT, runAtS, id)
  touch(id, nowS)
  count(queue, "enqueued", -1)
  count(queue, "scheduled", 1)
  if f[F_CKEY] then unparkOne(f[F_CKEY]) end
  return false
end

-- rec: the claim id's record of what it took, JSON [[id, token], ...], as
-- pieces for one table.concat (a string per job would be one more to hash).
local out, rec, n = {}, { "[[" }, 0
local leaseUntil = I(now + leaseMs)
-- entry("processing", now, "claimed (attempt N)", owner), one per N.
local entryHead = '{"state":"processing","at":' .. nowS .. ',"reason":"claimed (attempt '
local entryTail = ')","worker":' .. ownerJson .. "}"
local entries = {}
for q = 1, nq do
  local queue = ARGV[11 + q]
  local qk = readyKey(queue)
  local queueJson = cjson.encode(queue)
  local taken = 0
  -- A paused queue gives nothing: its jobs stay in ready:<queue>, in order.
  local active = not (paused and paused[queue])
  while active and n < limit do
    local ms = redis.call("ZRANGE", qk, "0", tostring(limit - n - 1))
    if #ms == 0 then break end
    -- The head just read, by rank: a ZREM per member would cost a lookup and
    -- a skiplist search of its long member each.
    redis.call("ZREMRANGEBYRANK", qk, "0", tostring(#ms - 1))
    for _, m in ipairs(ms) do
      local id = string.sub(m, READY_ID_AT)
      local k = JOB .. id
      local f = redis.call("HMGET", k, unpack(FIELDS, 1, CLAIM_FIELDS))
      local ckey = f[F_CKEY]
      if f[1] ~= "enqueued" then
        -- A stale member (the job moved on): dropped with the page.
      elseif ckey and activeCount(ckey) >= tonumber(f[F_CLIMIT]) then
        zadd(concParkedKey(ckey), "0", m)
      elseif f[F_RKEY] and not takeStart(id, k, f, queue) then
        -- Scheduled for a later window.
      else
        if ckey then addActive(ckey, 1) end
        local attempts, token = IC(tonumber(f[2]) + 1), IC(tonumber(f[3]) + 1)
        local e = entries[attempts]
        if not e then
          e = entryHead .. attempts .. entryTail
          entries[attempts] = e
        end
        local stored = f[4] or ""
        local hist, hn = pushHistory(stored, f[5], e)
        redis.call("HSET", k, "state", "processing", "attempts", attempts, "leaseToken", token,
          "leaseOwner", owner, "leaseUntil", leaseUntil, "updatedAt", nowS, "history", hist, "hn", IC(hn))
        zadd(K_PROCESSING, leaseUntil, id)
        touch(id, nowS)
        n, taken = n + 1, taken + 1
        local idJson = cjson.encode(id)
        local h1, h2, h3 = historyPieces(stored, hist, e)
        out[n] = jobJson(idJson, queueJson, f, attempts, token, nowS, h1, h2, h3, ownerJson, leaseUntil)
        local r = #rec
        rec[r + 1], rec[r + 2], rec[r + 3], rec[r + 4] = idJson, ",", token, "],["
      end
    end
  end
  if taken > 0 then
    count(queue, "enqueued", -taken)
    count(queue, "processing", taken)
  end
  if n >= limit then break end
end

for rk, forgetAt in pairs(rateForgetAt) do
  redis.call("HSET", B .. "rate", rk, I(rateNext[rk]))
  zadd(B .. "rate:forget", I(forgetAt), rk)
end

if claimId ~= "" and n > 0 then
  -- Expired claim ids are dropped when one is added, so an idle poll (the
  -- most frequent call) skips this; an expired id still found by a retry
  -- answers correctly, with those of its jobs still held under its tokens.
  local expired = redis.call("ZRANGEBYSCORE", B .. "claims:exp", "-inf", "(" .. nowS, "LIMIT", "0", "100")
  if #expired > 0 then
    redis.call("HDEL", B .. "claims", unpack(expired))
    redis.call("ZREM", B .. "claims:exp", unpack(expired))
  end
  rec[#rec] = "]]"
  redis.call("HSET", B .. "claims", claimId, table.concat(rec))
  redis.call("ZADD", B .. "claims:exp", leaseUntil, claimId)
end
finish(now)
return out
