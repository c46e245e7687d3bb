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
  Output:  an array with one JSON text per claimed job, a positional array:
           [mask, id, name, args, queue, priority, attempts, maxAttempts,
            createdAt, updatedAt, runAt, leaseToken, history, leaseOwner,
            leaseUntil, then those of retry, timeoutMs, uniqueKey, metadata,
            finishedAt, result, error, progress the job has, in that order;
            bit i of mask (1, 2, 4 ...) says the i-th of them is there]
           (decodeClaimed in codec.ts reads it)

  Why a JSON text per job: each job's HGETALL, as an array of ~30 short
  strings, cost the server ~7 us/job to read and send and the client ~19
  us/job to parse and decode (ioredis; ~45 over @upstash/redis, whose
  client base64-decodes each string). A JSON text per job costs the client
  ~4 us/job, round trip and decode included (~14 over @upstash/redis),
  a little less than one text of all jobs did. Not one text of all jobs:
  Redis's Lua hashes every byte of every string it makes, and table.concat
  makes its result by merging ever longer partial strings, so joining 500
  jobs' texts here cost ~2 us/job; a Lua array goes out as a RESP array and
  no string is made. For the same reason a job's text is one concatenation
  of pieces the claim already holds (~1.5 us/job, batch 500, on a 2-core
  dev VM), with no string built on the way. Fields stored as JSON (args,
  history, result ...) are pasted in as they are, never re-encoded by
  cjson, which would rewrite numbers such as 1e21 or 0.1; the fields the
  claim sets go out from the values it wrote, not read back.
]]
--@include lib/common.lua

-- HMGET fields. A claim reads the first CLAIM_FIELDS and sends the fields
-- it sets from what it wrote; a retried claim sets nothing and reads all.
local FIELDS = { "state", "attempts", "leaseToken", "history", "hn", "name", "args", "priority", "maxAttempts", "createdAt",
  "runAt", "retry", "timeoutMs", "uniqueKey", "metadata", "finishedAt", "result", "error", "progress",
  "queue", "updatedAt", "leaseOwner", "leaseUntil" }
local CLAIM_FIELDS = 19

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

-- The optional fields (FIELDS 12-19, usually all absent): the mask and the
-- present values, each after a comma. uniqueKey (14) is a plain string; the
-- others are stored as JSON or as a decimal number, valid JSON as they are.
local function optionalJson(f)
  local mask, s = 0, ""
  for i = 12, 19 do
    local v = f[i]
    if v then
      mask = mask + 2 ^ (i - 12)
      s = s .. "," .. (i == 14 and cjson.encode(v) or v)
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
-- report as a malformed job. One chain of .. is one concatenation in Lua,
-- half the cost of a table.concat.
local function jobJson(idJson, queueJson, f, attempts, token, updatedAt, h1, h2, h3, ownerJson, leaseUntil)
  local mask, optional = "0", ""
  if f[12] or f[13] or f[14] or f[15] or f[16] or f[17] or f[18] or f[19] then mask, optional = optionalJson(f) end
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
        local queueJson, leaseOwner = f[20] and cjson.encode(f[20]) or "null", f[22] and cjson.encode(f[22]) or "null"
        local h = f[4] and items(f[4]) or ""
        out[#out + 1] = jobJson(cjson.encode(c[1]), queueJson, f, f[2] or "null", f[3], f[21], h, "", "", leaseOwner, f[23])
      end
    end
    return out
  end
end

promote(now, tonumber(ARGV[9]))

-- rec: the claim id's record of what it took, JSON [[id, token], ...], as
-- pieces for one table.concat (a string per job would be one more to hash).
local out, rec, n = {}, { "[[" }, 0
local nowS, leaseUntil = I(now), I(now + leaseMs)
-- entry("processing", now, "claimed (attempt N)", owner), one per N.
local entryHead = '{"state":"processing","at":' .. nowS .. ',"reason":"claimed (attempt '
local entryTail = ')","worker":' .. ownerJson .. "}"
local entries = {}
for q = 1, nq do
  local queue = ARGV[11 + q]
  local qk = readyKey(queue)
  local queueJson = cjson.encode(queue)
  local taken = 0
  while n < limit do
    local ms = redis.call("ZRANGE", qk, "0", tostring(limit - n - 1))
    if #ms == 0 then break end
    -- The head just read, by rank: a ZREM per member costs a lookup and a
    -- skiplist search of its long member each (~0.3 us a job).
    redis.call("ZREMRANGEBYRANK", qk, "0", tostring(#ms - 1))
    for _, m in ipairs(ms) do
      local id = string.sub(m, READY_ID_AT)
      local k = JOB .. id
      local f = redis.call("HMGET", k, unpack(FIELDS, 1, CLAIM_FIELDS))
      if f[1] == "enqueued" then
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
