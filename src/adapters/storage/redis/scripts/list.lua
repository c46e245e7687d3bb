--[[
  list.lua: one page of jobs in (sort time, id) order, filtered, after a
  keyset cursor. The sort index holds every job (score = the time, member =
  id), and a zset orders equal scores by member bytes: exactly the (time, id)
  order of a cursor. Filters are checked job by job, so one call looks at
  no more than `budget` index entries, and a text search lowercases at most
  8 MiB of arguments (a job may carry 512 KiB): when either runs out first
  the page may be short and its cursor points at the last entry looked at.

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  index: created | updated | runat   ARGV[2] asc | desc
  ARGV[3]  limit   ARGV[4] budget
  ARGV[5]  "1" when a cursor follows, else "0"   ARGV[6] cursor time   ARGV[7] cursor id
  ARGV[8]  queue ("" = any)   ARGV[9] name ("" = any)   ARGV[10] lowercased text ("" = none)
  ARGV[11] number of states (0 = any), then the states
  Output:  { next cursor time or "", next cursor id or "", job hash, job hash, ... }
]]
--@include lib/common.lua

-- Bytewise order, as zset members sort (Lua's < follows the server's locale).
local function bytesLess(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local idx = B .. "idx:" .. ARGV[1]
-- Awaiting jobs only, by creation (the maintenance sweep): their own index.
if ARGV[1] == "created" and tonumber(ARGV[11]) == 1 and ARGV[12] == "awaiting" then idx = B .. "awaiting" end
local asc = ARGV[2] == "asc"
local limit, budget = tonumber(ARGV[3]), tonumber(ARGV[4])
local queue, name, text = ARGV[8], ARGV[9], ARGV[10]
local states = nil
if tonumber(ARGV[11]) > 0 then
  states = {}
  for j = 1, tonumber(ARGV[11]) do states[ARGV[11 + j]] = true end
end

local pos = 0
local cs, cid = nil, nil
if ARGV[5] == "1" then
  cs, cid = tonumber(ARGV[6]), ARGV[7]
  local cur = redis.call("ZSCORE", idx, cid)
  if cur and tonumber(cur) == cs then
    pos = (asc and redis.call("ZRANK", idx, cid) or redis.call("ZREVRANK", idx, cid)) + 1
    cs = nil -- exact position: nothing to skip
  elseif asc then
    pos = redis.call("ZCOUNT", idx, "-inf", "(" .. ARGV[6])
  else
    pos = redis.call("ZCOUNT", idx, "(" .. ARGV[6], "+inf")
  end
end

local TEXT_BYTES = 8 * 1024 * 1024
local textBytes = 0

local function matches(id)
  local f = redis.call("HMGET", JOB .. id, "state", "queue", "name", "args")
  if not f[1] then return false end
  if states and not states[f[1]] then return false end
  if queue ~= "" and f[2] ~= queue then return false end
  if name ~= "" and f[3] ~= name then return false end
  if text ~= "" then
    textBytes = textBytes + #(f[4] or "")
    return string.find(string.lower(id), text, 1, true) ~= nil
      or string.find(string.lower(f[3]), text, 1, true) ~= nil
      or string.find(string.lower(f[4] or ""), text, 1, true) ~= nil
  end
  return true
end

local items, scanned = {}, 0
local lastScore, lastId = nil, nil
local nextScore, nextId = "", ""
local done = false
while not done do
  local chunk
  if asc then
    chunk = redis.call("ZRANGE", idx, pos, pos + 99, "WITHSCORES")
  else
    chunk = redis.call("ZREVRANGE", idx, pos, pos + 99, "WITHSCORES")
  end
  if #chunk == 0 then break end
  pos = pos + #chunk / 2
  for j = 1, #chunk, 2 do
    local id, score = chunk[j], tonumber(chunk[j + 1])
    scanned = scanned + 1
    local skip = false
    if cs and score == cs then
      -- same time as the cursor: only ids past it
      if asc then skip = not bytesLess(cid, id) else skip = not bytesLess(id, cid) end
    end
    if not skip and matches(id) then
      if #items == limit then
        nextScore, nextId = I(lastScore), lastId
        done = true
        break
      end
      items[#items + 1] = redis.call("HGETALL", JOB .. id)
      lastScore, lastId = score, id
    end
    if scanned >= budget or textBytes >= TEXT_BYTES then
      if j + 2 <= #chunk or redis.call("ZCARD", idx) > pos then
        nextScore, nextId = I(score), id
      end
      done = true
      break
    end
  end
end

local out = { nextScore, nextId }
for _, it in ipairs(items) do out[#out + 1] = it end
return out
