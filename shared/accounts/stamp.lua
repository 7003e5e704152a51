-- A request is on the wire: re-stamp its window entry with Redis' clock (the clock every
-- script uses), since Gemini counts a request when it arrives, not when it was granted.
-- KEYS[1] the quota owner's minute window, KEYS[2] the model's ready zset (µs), KEYS[3] the
-- owner's info hash, KEYS[4] the key's info hash, KEYS[5] the main model owner's info hash
-- ARGV[1] the request's window member, ARGV[2] rate window (ms), ARGV[3] key id
-- Returns 1 (stamped), 0 (the entry is gone: refunded or the key re-imported), or 2: Gemini
-- announced a cooldown for this key or its project after the request was granted, so it
-- must not be sent.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = redis.call('HMGET', KEYS[3], 'minute_limit', 'learned_limit', 'learned_until',
                     'probe_at', 'announced_until')
local own = tonumber(redis.call('HGET', KEYS[4], 'announced_until') or '0') or 0
if math.max(own, tonumber(f[5] or '0') or 0) > now then return 2 end
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now, ARGV[1]) == 0 then return 0 end
local minute_limit = f[1] or redis.call('HGET', KEYS[5], 'minute_limit')
local limit = effective_limit(minute_limit, f[2], f[3], f[4], now) or 0
local window = tonumber(ARGV[2])
if limit > 0 and redis.call('ZCOUNT', KEYS[1], now - window, '+inf') >= limit then
  -- a key parked until its window frees is parked until the re-stamped window frees
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], now - window, '+inf', 'WITHSCORES',
                            'LIMIT', 0, 1)
  redis.call('ZADD', KEYS[2], 'GT', (tonumber(oldest[2]) + window) * 1000, ARGV[3])
end
return 1
