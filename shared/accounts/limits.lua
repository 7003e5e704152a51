-- Prepended to every key-pool script that needs a key's request limit (see pool.py).
--
-- The per-window request limit a key has now: its configured `minute_limit`, or a lower
-- limit learned from Gemini's own 429s (`learned_limit`) while it lasts (`learned_until`,
-- ms). Arguments are the hash fields as HMGET returns them (strings or false).
local function effective_limit(minute_limit, learned_limit, learned_until, now)
  local limit, learned = tonumber(minute_limit or ''), tonumber(learned_limit or '')
  if limit and learned and (tonumber(learned_until or '0') or 0) > now and learned < limit then
    return learned
  end
  return limit
end

