-- Record what Gemini answered for one key.
-- KEYS[1] info hash, KEYS[2] minute window, KEYS[3] ready zset (scores in µs),
-- KEYS[4] hash id -> why it is parked
-- ARGV[1] kind: success | minute | tokens | day | disabled | failure | neutral
-- ARGV[2] retry delay ms (minute; 0 = until the window frees), ARGV[3] next quota day ms,
-- ARGV[4] reason text, ARGV[5] base backoff ms, ARGV[6] max backoff ms, ARGV[7] key id,
-- ARGV[8] rate window ms, ARGV[9] how long a learned per-minute limit holds (ms),
-- ARGV[10] the refused request's window member ('' = unknown)
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 'missing'
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
local kind, id = ARGV[1], ARGV[7]
local function push_cooldown(until_ms)
  local current = tonumber(redis.call('HGET', KEYS[1], 'cooldown_until') or '0') or 0
  if until_ms > current then redis.call('HSET', KEYS[1], 'cooldown_until', until_ms) end
  redis.call('ZADD', KEYS[3], 'GT', until_ms * 1000, id)
  redis.call('HSET', KEYS[4], id, 'cooling down')
end
if kind == 'success' then
  local failures = tonumber(redis.call('HGET', KEYS[1], 'consecutive_failures') or '0') or 0
  redis.call('HSET', KEYS[1], 'consecutive_failures', 0)
  if failures >= 3 then
    redis.call('HSET', KEYS[1], 'cooldown_until', 0)
    redis.call('ZADD', KEYS[3], 'LT', now_us, id)
  end
  return 'ok'
end
redis.call('HSET', KEYS[1], 'last_error', ARGV[4])
if kind == 'minute' then
  local window_ms = tonumber(ARGV[8])
  -- a refused request did not count: out of the window. Gemini refused although the pool
  -- thought the key was under its limit: the real limit is what the window holds now
  -- (other refusals still on their way leave as they report); hold it for a while
  local held = redis.call('ZCOUNT', KEYS[2], now - window_ms, '+inf') - 1
  if ARGV[10] ~= '' then held = held + 1 - redis.call('ZREM', KEYS[2], ARGV[10]) end
  local limit = tonumber(redis.call('HGET', KEYS[1], 'minute_limit') or '0') or 0
  local learned = tonumber(redis.call('HGET', KEYS[1], 'learned_limit') or '') or limit
  local learned_until = tonumber(redis.call('HGET', KEYS[1], 'learned_until') or '0') or 0
  if learned_until <= now then learned = limit end
  if held >= 1 and held < learned then
    redis.call('HSET', KEYS[1], 'learned_limit', held, 'learned_until', now + tonumber(ARGV[9]))
  end
  local delay = tonumber(ARGV[2])
  local until_ms = now + delay
  if delay <= 0 then
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    until_ms = oldest[2] and (tonumber(oldest[2]) + window_ms) or (now + window_ms)
  end
  push_cooldown(until_ms)
elseif kind == 'tokens' then
  -- over the tokens-per-minute limit: wait as asked; the request count taught nothing
  push_cooldown(now + math.max(1000, tonumber(ARGV[2])))
elseif kind == 'day' then
  push_cooldown(tonumber(ARGV[3]))
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
