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
  Output:  one JSON text: an array with one positional array per claimed job,
           [mask, id, name, args, queue, priority, attempts, maxAttempts,
            createdAt, updatedAt, runAt, leaseToken, history, leaseOwner,
            leaseUntil, then those of retry, timeoutMs, uniqueKey, metadata,
            finishedAt, result, error, progress the job has, in that order;
            bit i of mask (1, 2, 4 ...) says the i-th of them is there]
           (decodeClaimed in codec.ts reads it)

  Why one JSON text: each job's HGETALL, as an array of ~30 short strings,
  cost the server ~7 us/job to read and send and the client ~19 us/job to
  parse and decode (ioredis; ~45 over @upstash/redis, whose client
  base64-decodes each string). The same jobs as one JSON text cost ~0.5 us
  to send and ~3 us to parse (~16 over @upstash/redis); building it here
  costs ~3 us/job (batch 500, on a 2-core dev VM). A flat positional
  array would still be one RESP string per field. Fields stored as JSON
  (args, history, result ...) are pasted in as they are, never re-encoded
  by cjson, which would rewrite numbers such as 1e21 or 0.1; the fields the
  claim sets go out from the values it wrote, not read back.
]]
--@include lib/common.lua

-- HMGET fields. A claim reads the first CLAIM_FIELDS and sends the fields
-- it sets from what it wrote; a retried claim sets nothing and reads all.
local FIELDS = { "state", "attempts", "leaseToken", "history", "hn", "name", "args", "priority", "maxAttempts", "createdAt",
  "runAt", "retry", "timeoutMs", "uniqueKey", "metadata", "finishedAt", "result", "error", "progress",
  "queue", "updatedAt", "leaseOwner", "leaseUntil" }
local CLAIM_FIELDS = 19

-- A stored history ("\n"-joined entries) as the JSON array it stands for.
-- string.find is a memchr; gsub's pattern matcher costs about twice as much
-- on the usual history of one or two entries.
local function historyJson(hist)
  if not hist or hist == "" then return "[]" end
  local i = string.find(hist, "\n", 1, true)
  if not i then return "[" .. hist .. "]" end
  if not string.find(hist, "\n", i + 1, true) then
    return "[" .. string.sub(hist, 1, i - 1) .. "," .. string.sub(hist, i + 1) .. "]"
  end
  return "[" .. (string.gsub(hist, "\n", ",")) .. "]"
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

-- One job's positional array (see the header). A missing required field
-- goes out as null, for the client to report as a malformed job. One chain
-- of .. is one concatenation in Lua, half the cost of a table.concat.
local function jobJson(idJson, queueJson, f, attempts, token, updatedAt, histJson, ownerJson, leaseUntil)
  local mask, optional = "0", ""
  if f[12] or f[13] or f[14] or f[15] or f[16] or f[17] or f[18] or f[19] then mask, optional = optionalJson(f) end
  return "[" .. mask .. "," .. idJson .. "," .. nameJson(f[6]) .. "," .. (f[7] or "null") .. "," .. queueJson .. ","
    .. (f[8] or "null") .. "," .. attempts .. "," .. (f[9] or "null") .. "," .. (f[10] or "null") .. ","
    .. (updatedAt or "null") .. "," .. (f[11] or "null") .. "," .. token .. "," .. histJson .. ","
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
        out[#out + 1] = jobJson(cjson.encode(c[1]), queueJson, f, f[2] or "null", f[3], f[21], historyJson(f[4]), leaseOwner, f[23])
      end
    end
    return "[" .. table.concat(out, ",") .. "]"
  end
end

promote(now, tonumber(ARGV[9]))

-- claimed: "[id, token]" per job, the claim id's record of what it took.
local out, claimed, n = {}, {}, 0
local nowS, leaseUntil = I(now), I(now + leaseMs)
-- entry("processing", now, "claimed (attempt N)", owner), of which only N differs between jobs.
local entryHead = '{"state":"processing","at":' .. nowS .. ',"reason":"claimed (attempt '
local entryTail = ')","worker":' .. ownerJson .. "}"
for q = 1, nq do
  local queue = ARGV[11 + q]
  local qk = B .. "ready:" .. queue
  local queueJson = cjson.encode(queue)
  local taken = 0
  while n < limit do
    local ms = redis.call("ZRANGE", qk, "0", tostring(limit - n - 1))
    if #ms == 0 then break end
    batched("ZREM", qk, ms)
    for _, m in ipairs(ms) do
      local id = string.sub(m, READY_ID_AT)
      local k = JOB .. id
      local f = redis.call("HMGET", k, unpack(FIELDS, 1, CLAIM_FIELDS))
      if f[1] == "enqueued" then
        local attempts, token = IC(tonumber(f[2]) + 1), IC(tonumber(f[3]) + 1)
        local hist, hn = pushHistory(f[4], f[5], entryHead .. attempts .. entryTail)
        redis.call("HSET", k, "state", "processing", "attempts", attempts, "leaseToken", token,
          "leaseOwner", owner, "leaseUntil", leaseUntil, "updatedAt", nowS, "history", hist, "hn", IC(hn))
        zadd(K_PROCESSING, leaseUntil, id)
        touch(id, nowS)
        n, taken = n + 1, taken + 1
        local idJson = cjson.encode(id)
        out[n] = jobJson(idJson, queueJson, f, attempts, token, nowS, historyJson(hist), ownerJson, leaseUntil)
        claimed[n] = "[" .. idJson .. "," .. token .. "]"
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
  redis.call("HSET", B .. "claims", claimId, "[" .. table.concat(claimed, ",") .. "]")
  redis.call("ZADD", B .. "claims:exp", leaseUntil, claimId)
end
finish(now)
return "[" .. table.concat(out, ",") .. "]"
