--[[
  purge.lua: hard-deletes jobs in the given states last updated before
  `olderThan`, walking the updatedAt index oldest first. Looks at most at
  `budget` index entries so that one call stays short; the caller repeats
  from the position returned until done. A processing job removed frees its
  concurrency slot (freeSlot in lib/common.lua).

  KEYS[1]  base "<prefix>{<tag>}:"
  ARGV[1]  olderThan   ARGV[2] limit   ARGV[3] scan budget
  ARGV[4]  position to start from (0 the first time; entries before it were kept)
  ARGV[5]  number of states, then the states
  Output:  { removed, 1 when no candidates remain else 0, position to go on from }
]]
--@include lib/common.lua

local olderThan, limit, budget = "(" .. I(tonumber(ARGV[1])), tonumber(ARGV[2]), tonumber(ARGV[3])
local pos = tonumber(ARGV[4])
local want = {}
for j = 1, tonumber(ARGV[5]) do want[ARGV[5 + j]] = true end
local removed, scanned, exhausted = 0, 0, 0
while removed < limit and scanned < budget do
  flushIndexes()
  local ids = redis.call("ZRANGEBYSCORE", B .. "idx:updated", "-inf", olderThan, "LIMIT", tostring(pos), "100")
  if #ids == 0 then
    exhausted = 1
    break
  end
  for _, id in ipairs(ids) do
    scanned = scanned + 1
    local state = redis.call("HGET", JOB .. id, "state")
    if not state then
      removeJob(id) -- an index entry without its job: drop it
    elseif want[state] then
      removeJob(id)
      removed = removed + 1
    else
      pos = pos + 1
    end
    if removed >= limit or scanned >= budget then break end
  end
end
flushIndexes()
flushCounts()
flushActive()
return { removed, exhausted, pos }
