-- Take one API key from the pool, atomically.
-- KEYS[1] ids set, KEYS[2] import lock, KEYS[3] ready zset (id -> µs it may be free again),
-- KEYS[4] quota day of the ready scores, KEYS[5] hash id -> why it is parked
-- ARGV[1] quota day (YYYY-MM-DD in QUOTA_TZ), ARGV[2] start of the next quota day (ms),
-- ARGV[3] unique request id, ARGV[4] half-open trial window (ms), ARGV[5] '1' on a new day,
-- ARGV[6] length of the rate window (ms; 60000 = Gemini's minute), ARGV[7] resync
-- interval (ms), ARGV[8] per-account key prefix, ARGV[9] daily counter TTL (s),
-- ARGV[10] the request's estimated input tokens (0 = unknown: no tokens-per-minute check)
-- Window members are `ms:request-id:tokens`; a key with `tpm_limit` grants only while the
-- tokens of its window plus this request's fit. Returns {'toolarge'} when the request is
-- larger than every usable key's whole tokens-per-minute limit.
-- KEYS[6] zset of promised slots (member -> ms): a grant uses up the one now due
-- ARGV[11] the model asked for, ARGV[12] the main model, ARGV[13] per-project key prefix,
-- KEYS[8] set of the other models: windows, daily counts and limits are the quota
-- owner's (the key's project and the model, limits.lua `quota_base`), KEYS[3]/KEYS[4]
-- are the model's ready set and its day; status, failures and a key's own cooldown stay
-- with the key.
-- Returns {'ok', id, api_key, member, owner, bad...} | {'wait', wait_ms, reason, bad...}
--       | {'importing'} | {'empty', bad...}; `bad` lists "id:reason" of skipped keys.
--
-- Candidates are the keys whose ready score is <= now, least recently used first (that
-- order is the round robin). Each is checked for real; one that is not free gets the
-- score of the moment it will be, so a saturated pool costs one ZRANGEBYSCORE, not a
-- walk over every key.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'importing'}
end
local t = redis.call('TIME')
-- ready scores are in microseconds: every script run sees a later TIME, so the key just
-- used always sorts after the others (a millisecond could tie and repeat one key)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
local day, next_day, trial_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local window_ms = tonumber(ARGV[6])
local prefix = ARGV[8]
local tokens = tonumber(ARGV[10] or '0') or 0
local ready = KEYS[3]
local model = ARGV[11]
if model ~= ARGV[12] then redis.call('SADD', KEYS[8], model) end

-- KEYS[7] resync marker, ARGV[7] its lifetime: once per lifetime every known key is
-- looked at again (a status set to active by hand comes back)
if redis.call('SET', KEYS[7], '1', 'NX', 'PX', ARGV[7]) then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    redis.call('ZADD', ready, 'NX', now_us, id)
  end
end

-- ARGV[5] = '1' when the caller saw a new quota day (or just started): make sure the ready
-- scores were computed for this day, else every parked key is re-checked
if ARGV[5] == '1' and redis.call('GET', KEYS[4]) ~= day then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', ready, '(' .. now_us, '+inf')) do
    redis.call('ZADD', ready, now_us, id)
  end
  redis.call('SET', KEYS[4], day)
end

-- state of one key for this model: 'free', … | 'later', at, reason | 'drop' | 'bad'
local function inspect(id)
  local k = redis.call('HMGET', prefix .. id .. ':info', 'status', 'cooldown_until', 'api_key',
                       'consecutive_failures', 'project')
  if not k[1] then return 'drop' end
  local owner = quota_base(prefix, ARGV[13], id, k[5], model, ARGV[12])
  local lim = quota_limits(owner, quota_base(prefix, ARGV[13], id, k[5], ARGV[12], ARGV[12]))
  local q = redis.call('HMGET', owner .. ':info', 'cooldown_until', 'learned_limit',
                       'learned_until', 'probe_at')
  local quota, limit = tonumber(lim[2]), tonumber(lim[1])
  local cooldown, failures = tonumber(k[2] or '0'), tonumber(k[4] or '0')
  local used = tonumber(redis.call('HGET', owner .. ':daily', day) or '0')
  if not k[3] or not quota or not limit or quota < 1 or limit < 1 or not cooldown
     or not failures or not used then
    return 'bad'
  end
  if k[1] ~= 'active' then return 'drop' end
  limit = effective_limit(lim[1], q[2], q[3], q[4], now)
  -- the key's own cooldown, or one Gemini announced for its whole project
  cooldown = math.max(cooldown, tonumber(q[1] or '0') or 0)
  if cooldown > now then return 'later', cooldown, 'cooling down' end
  if used >= quota then return 'later', next_day, 'daily quota used' end
  local window = owner .. ':minute_window'
  redis.call('ZREMRANGEBYSCORE', window, '-inf', now - window_ms)
  local count = redis.call('ZCARD', window)
  if count >= limit then
    local oldest = redis.call('ZRANGE', window, 0, 0, 'WITHSCORES')
    return 'later', tonumber(oldest[2]) + window_ms, 'minute limit reached'
  end
  local tpm = tonumber(lim[3] or '')
  if tpm and tokens > 0 then
    if tokens > tpm then return 'toolarge' end
    local entries = redis.call('ZRANGE', window, 0, -1, 'WITHSCORES')
    local held = 0
    for i = 1, #entries, 2 do held = held + (tonumber(string.match(entries[i], ':(%d+)$') or '0') or 0) end
    if held + tokens > tpm then
      -- free once enough of the oldest entries have left the window
      for i = 1, #entries, 2 do
        held = held - (tonumber(string.match(entries[i], ':(%d+)$') or '0') or 0)
        if held + tokens <= tpm then
          return 'later', tonumber(entries[i + 1]) + window_ms, 'token limit reached'
        end
      end
    end
  end
  return 'free', {k[3], q[2], q[3]}, used, count, limit, quota, failures, owner
end

local bad = {}
local function with_bad(result)
  for _, item in ipairs(bad) do result[#result + 1] = item end
  return result
end

local skipped, too_large, usable = 0, 0, 0  -- keys too small for this request stay put
while true do
  local batch = redis.call('ZRANGEBYSCORE', ready, '-inf', now_us, 'LIMIT', skipped, 16)
  if #batch == 0 then break end
  for _, id in ipairs(batch) do
    local state, a, b, c, limit, quota, failures, owner = inspect(id)
    if state ~= 'drop' and state ~= 'bad' then usable = usable + 1 end
    if state == 'toolarge' then
      skipped, too_large = skipped + 1, too_large + 1
    end
    if state == 'free' then
      local base = prefix .. id
      local member = now .. ':' .. ARGV[3] .. ':' .. tokens
      redis.call('ZADD', owner .. ':minute_window', now, member)
      redis.call('PEXPIRE', owner .. ':minute_window', 2 * window_ms)
      redis.call('HINCRBY', owner .. ':daily', day, 1)
      redis.call('EXPIRE', owner .. ':daily', ARGV[9])
      local learned = tonumber(a[2] or '')
      if learned and c >= learned and (tonumber(a[3] or '0') or 0) > now then
        -- the one request over a learned limit: report.lua raises the limit if it passes
        redis.call('HSET', owner .. ':info', 'probe_member', member, 'probe_at', now + window_ms)
      end
      local next_free, why = 0, nil  -- ms; 0 = still free: to the back of the round robin
      local function park(at, reason)
        if at > next_free then next_free, why = at, reason end
      end
      if c + 1 >= limit then
        local oldest = redis.call('ZRANGE', owner .. ':minute_window', 0, 0, 'WITHSCORES')
        park(tonumber(oldest[2]) + window_ms, 'minute limit reached')
      end
      if b + 1 >= quota then park(next_day, 'daily quota used') end
      if failures >= 3 then
        -- half-open: this is the one trial request until it reports back
        redis.call('HSET', base .. ':info', 'cooldown_until', now + trial_ms)
        park(now + trial_ms, 'cooling down')
      end
      redis.call('ZADD', ready, next_free > 0 and next_free * 1000 or now_us, id)
      if why then redis.call('HSET', KEYS[5], id, why) end
      local promised = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
      if promised[2] and tonumber(promised[2]) <= now + 1000 then
        redis.call('ZREM', KEYS[6], promised[1])
      end
      return with_bad({'ok', id, a[1], member, owner})
    elseif state == 'later' then
      -- strictly after now, so the loop moves on even if the clocks disagree
      redis.call('ZADD', ready, math.max(a * 1000, now_us + 1), id)
      redis.call('HSET', KEYS[5], id, b)
    elseif state == 'drop' then
      redis.call('ZREM', ready, id)
    elseif state == 'toolarge' then
      -- left where it is (skipped by the offset): fine for smaller requests
    else
      bad[#bad + 1] = id .. ':malformed account hash'
      redis.call('ZADD', ready, (now + 60000) * 1000, id)  -- looked at again in a minute
    end
  end
end

if too_large > 0 and too_large == usable and redis.call('ZCOUNT', ready, '(' .. now_us, '+inf') == 0 then
  return with_bad({'toolarge'})
end
local first = redis.call('ZRANGEBYSCORE', ready, '(' .. now_us, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #first == 0 and too_large == 0 then
  first = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
end
if #first == 0 and too_large > 0 then return with_bad({'toolarge'}) end
if #first == 0 then
  if redis.call('SCARD', KEYS[1]) > 0 then  -- lost or never built: rebuild, ask again
    for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
      redis.call('ZADD', ready, 'NX', 0, id)
    end
    return {'retry'}
  end
  return with_bad({'empty'})
end
local reason = redis.call('HGET', KEYS[5], first[1])
return with_bad({'wait', tostring(math.max(0, math.floor((tonumber(first[2]) - now_us) / 1000))),
                 reason or 'no key free'})
