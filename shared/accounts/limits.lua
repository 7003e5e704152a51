-- Prepended to every key-pool script that needs a key's request limit (see pool.py).
--
-- The per-window request limit a key has now: its configured `minute_limit`, or a lower
-- limit learned from Gemini's own 429s (`learned_limit`) while it lasts (`learned_until`,
-- ms). Once `probe_at` (ms) has passed, a learned limit allows one request more: the probe
-- that, when Gemini accepts it, raises the learned limit (report.lua). Arguments are the
-- hash fields as HMGET returns them (strings or false).
local function effective_limit(minute_limit, learned_limit, learned_until, probe_at, now)
  local limit, learned = tonumber(minute_limit or ''), tonumber(learned_limit or '')
  if limit and learned and (tonumber(learned_until or '0') or 0) > now and learned < limit then
    if (tonumber(probe_at or '0') or 0) <= now then return learned + 1 end
    return learned
  end
  return limit
end
