-- Record what Gemini answered for one key.
-- KEYS[1] info hash, KEYS[2] minute window, KEYS[3] ready zset (scores in µs),
-- KEYS[4] hash id -> why it is parked, KEYS[5] list of the key's limit changes
-- ARGV[1] kind: success | minute | tokens | day | disabled | failure | neutral
-- ARGV[2] retry delay ms (-1 = Gemini gave none), ARGV[3] next quota day ms,
-- ARGV[4] reason text, ARGV[5] base backoff ms, ARGV[6] max backoff ms, ARGV[7] key id,
-- ARGV[8] rate window ms, ARGV[9] how long a learned per-minute limit holds (ms),
-- ARGV[10] the request's window member ('' = unknown), ARGV[11] boundary slack (ms):
-- a per-minute 429 whose retry delay is within it is a race at the window's edge, not
-- evidence of a lower limit, ARGV[12] quiet period before a learned limit is probed (ms),
-- ARGV[13] shortest cooldown after a boundary 429 (ms), ARGV[14] limit changes kept
-- History (optional, issue 25): KEYS[6] the key's usage hash (`{day}:{counter}`),
-- KEYS[7] the pool's per-minute hash of this minute, ARGV[15] quota day,
-- ARGV[16] usage hash TTL (s), ARGV[17] per-minute hash TTL (s)
-- Quota owner (issue 37): KEYS[2] and KEYS[5] are the window and limit changes of the
-- request's project and model, KEYS[8] its info hash (limits, learned limits, a cooldown
-- for the whole project), KEYS[9] the main model's (limits default to its). For a key
-- without a project and the main model, KEYS[8] is KEYS[1]. ARGV[18] the 429's scope:
-- `project` cools (and teaches) the owner, every key of the project; `key` the key alone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 'missing'
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
local kind, id = ARGV[1], ARGV[7]
if KEYS[6] then
  -- every answered request, by what it was: the key's day and the pool's minute
  local counter = ({minute = '429_minute', tokens = '429_tokens', day = '429_day',
                    disabled = 'errors', failure = 'errors', neutral = 'errors'})[kind]
  redis.call('HINCRBY', KEYS[6], ARGV[15] .. ':requests', 1)
  if counter then redis.call('HINCRBY', KEYS[6], ARGV[15] .. ':' .. counter, 1) end
  redis.call('EXPIRE', KEYS[6], tonumber(ARGV[16]))
  redis.call('HINCRBY', KEYS[7], 'requests', 1)
  if counter then redis.call('HINCRBY', KEYS[7], counter, 1) end
  redis.call('EXPIRE', KEYS[7], tonumber(ARGV[17]))
end
local owner = KEYS[8]
local whole_project = ARGV[18] == 'project' or owner == KEYS[1]
local function push_cooldown(until_ms, announced, target)
  target = target or KEYS[1]
  local current = tonumber(redis.call('HGET', target, 'cooldown_until') or '0') or 0
  if until_ms > current then redis.call('HSET', target, 'cooldown_until', until_ms) end
  -- a wait Gemini announced: requests granted before it but not yet sent hold back too
  if announced then redis.call('HSET', target, 'announced_until', until_ms) end
  redis.call('ZADD', KEYS[3], 'GT', until_ms * 1000, id)
  redis.call('HSET', KEYS[4], id, 'cooling down')
end
-- a learned limit moved: recorded for /api/v1/accounts (newest first)
local function moved(from, to, why)
  redis.call('LPUSH', KEYS[5], cjson.encode({at = now, from = from, to = to, why = why}))
  redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[14]) - 1)
  redis.call('PEXPIRE', KEYS[5], 7 * 86400000)
end
local f = redis.call('HMGET', owner, 'minute_limit', 'learned_limit', 'learned_until',
                     'probe_member')
local limit = tonumber(f[1] or redis.call('HGET', KEYS[9], 'minute_limit') or '') or 0
local learned = tonumber(f[2] or '')
if learned and (tonumber(f[3] or '0') or 0) <= now then learned = nil end
local was_probe = ARGV[10] ~= '' and f[4] == ARGV[10]
if was_probe then redis.call('HDEL', owner, 'probe_member') end
-- where a 429's wait goes: the owner (every key of the project) or the key alone
local target = whole_project and owner or KEYS[1]
if kind == 'success' then
  local failures = tonumber(redis.call('HGET', KEYS[1], 'consecutive_failures') or '0') or 0
  redis.call('HSET', KEYS[1], 'consecutive_failures', 0)
  if failures >= 3 then
    redis.call('HSET', KEYS[1], 'cooldown_until', 0)
    redis.call('ZADD', KEYS[3], 'LT', now_us, id)
  end
  if was_probe and learned then
    -- Gemini took one request more than the learned limit: the limit is at least that
    if learned + 1 >= limit then
      redis.call('HDEL', owner, 'learned_limit', 'learned_until', 'probe_at')
    else
      redis.call('HSET', owner, 'learned_limit', learned + 1,
                 'learned_until', now + tonumber(ARGV[9]), 'probe_at', now + tonumber(ARGV[8]))
    end
    moved(learned, math.min(learned + 1, limit), 'probe accepted')
  end
  return 'ok'
end
redis.call('HSET', KEYS[1], 'last_error', ARGV[4])
if kind == 'minute' then
  local window_ms, delay = tonumber(ARGV[8]), tonumber(ARGV[2])
  -- a refused request did not count: out of the window
  if ARGV[10] ~= '' then redis.call('ZREM', KEYS[2], ARGV[10]) end
  local held = redis.call('ZCOUNT', KEYS[2], now - window_ms, '+inf')
  local current = learned or limit
  if delay > tonumber(ARGV[11]) then
    -- Gemini's window stays full well past any edge race while the pool thought there
    -- was room: the real limit is at most what the window holds now (other refusals
    -- still on their way leave as they report); held for a while, probed after a quiet
    if whole_project and held >= 1 and held < current then
      redis.call('HSET', owner, 'learned_limit', held)
      moved(current, held, 'per-minute 429 with ' .. math.ceil(delay / 1000) .. ' s to wait')
      learned = held
    end
    if learned and whole_project then  -- a new lesson, or a refused probe: hold it, probe later
      redis.call('HSET', owner, 'learned_until', now + tonumber(ARGV[9]),
                 'probe_at', now + tonumber(ARGV[12]))
    end
    push_cooldown(now + delay, true, target)
  elseif delay >= 0 then
    -- a race at the window's edge (Gemini counts arrivals a little later than the pool
    -- stamps them): no lesson, the key waits out Gemini's own delay
    push_cooldown(now + math.max(delay, tonumber(ARGV[13])), true, target)
  else
    -- no RetryInfo: no lesson either; the key waits until the pool's own window frees
    local oldest = redis.call('ZRANGEBYSCORE', KEYS[2], now - window_ms, '+inf',
                              'WITHSCORES', 'LIMIT', 0, 1)
    local until_ms = oldest[2] and (tonumber(oldest[2]) + window_ms) or now
    push_cooldown(math.max(until_ms, now + tonumber(ARGV[13])), false, target)
  end
elseif kind == 'tokens' then
  -- over the tokens-per-minute limit: wait as asked; the request count taught nothing
  push_cooldown(now + math.max(1000, tonumber(ARGV[2])), true, target)
elseif kind == 'day' then
  push_cooldown(tonumber(ARGV[3]), true, target)
elseif kind == 'disabled' then
  redis.call('HSET', KEYS[1], 'status', 'disabled', 'disabled_reason', ARGV[4])
  redis.call('ZREM', KEYS[3], id)
elseif kind == 'failure' then
  local failures = redis.call('HINCRBY', KEYS[1], 'consecutive_failures', 1)
  if failures >= 3 then
    local backoff = math.min(tonumber(ARGV[6]), tonumber(ARGV[5]) * 2 ^ (failures - 3))
    push_cooldown(now + backoff)
  end
end
return 'ok'
