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

-- The prefix of a quota owner's Redis names (redis_keys.quota_base): Gemini counts every
-- window per Google Cloud project and model. A key without a project is its own project,
-- whose names are the key's own; another model than the main one adds `:m:{model}`.
local function quota_base(account_prefix, project_prefix, id, project, model, main_model)
  local base = account_prefix .. id
  if project and project ~= '' then base = project_prefix .. project end
  if model == main_model then return base end
  return base .. ':m:' .. model
end

-- An owner's `minute_limit`, `quota_daily`, `tpm_limit` (HMGET order): its own, or the main
-- model's owner's when the import wrote none for this model.
local function quota_limits(base, main_base)
  local f = redis.call('HMGET', base .. ':info', 'minute_limit', 'quota_daily', 'tpm_limit')
  if not f[1] and base ~= main_base then
    f = redis.call('HMGET', main_base .. ':info', 'minute_limit', 'quota_daily', 'tpm_limit')
  end
  return f
end
