-- Promise the next free request slot of the pool to one waiting task (spreads waiters).
-- KEYS[1] ids set, KEYS[2] promised zset (member -> ms)
-- ARGV[1] quota day, ARGV[2] start of the next quota day (ms), ARGV[3] rate window (ms),
-- ARGV[4] unique member, ARGV[5] how long a due promise still counts (ms),
-- ARGV[6] per-account key prefix
-- Returns the wait in ms until the promised slot, or -1 when no key can take a request.
--
-- Every active key frees one slot per entry of its rate window (at entry + window) and
-- has `limit - entries` free now. All those moments, sorted, are the pool's next slots;
-- the k-th outstanding promise gets the k-th slot (a further window later per lap).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local day, next_day, window_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[5]))

local slots = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local base = ARGV[6] .. id
  local f = redis.call('HMGET', base .. ':info', 'status', 'quota_daily', 'minute_limit',
                       'cooldown_until', 'learned_limit', 'learned_until', 'probe_at')
  local quota, limit = tonumber(f[2] or ''), effective_limit(f[3], f[5], f[6], f[7], now)
  if f[1] == 'active' and quota and limit then
    local left = quota - (tonumber(redis.call('HGET', base .. ':daily', day) or '0') or 0)
    local start = math.max(now, tonumber(f[4] or '0') or 0)
    if start >= next_day then left = 0 end
    local entries = redis.call('ZRANGEBYSCORE', base .. ':minute_window', now - window_ms,
                               '+inf', 'WITHSCORES')
    local count, taken = #entries / 2, 0
    for _ = 1, math.max(0, limit - count) do
      if taken < left then slots[#slots + 1] = start; taken = taken + 1 end
    end
    -- over a (learned) limit, the oldest expiries free nothing yet
    for i = math.max(0, count - limit) + 1, count do
      if taken < left then
        slots[#slots + 1] = math.max(start, tonumber(entries[2 * i]) + window_ms)
        taken = taken + 1
      end
    end
  end
end
if #slots == 0 then return -1 end
table.sort(slots)
local k = redis.call('ZCARD', KEYS[2])
local at = slots[(k % #slots) + 1] + math.floor(k / #slots) * window_ms
redis.call('ZADD', KEYS[2], at, ARGV[4])
redis.call('PEXPIRE', KEYS[2], math.max(1, at - now) + 2 * window_ms)
return math.max(0, at - now)
