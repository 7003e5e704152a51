-- Promise the next free request slot of the pool to one waiting task (spreads waiters).
-- KEYS[1] ids set, KEYS[2] promised zset (member -> ms)
-- ARGV[1] quota day, ARGV[2] start of the next quota day (ms), ARGV[3] rate window (ms),
-- ARGV[4] unique member, ARGV[5] how long a due promise still counts (ms),
-- ARGV[6] per-account key prefix, ARGV[7] per-project key prefix, ARGV[8] the model,
-- ARGV[9] the main model, ARGV[10] '1': only look (the wait until the next unpromised
-- slot, promising nothing: the fair share's pacing)
-- Returns the wait in ms until the promised slot, or -1 when no key can take a request.
--
-- Every quota owner (a project and the model) with an active key frees one slot per entry
-- of its rate window (at entry + window) and has `limit - entries` free now, from when its
-- first key's cooldown ends. All those moments, sorted, are the pool's next slots; the
-- k-th outstanding promise gets the k-th slot (a further window later per lap).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local day, next_day, window_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[5]))

-- owner -> the earliest moment one of its active keys is out of its own cooldown
local owners, order = {}, {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local f = redis.call('HMGET', ARGV[6] .. id .. ':info', 'status', 'cooldown_until', 'project')
  if f[1] == 'active' then
    local owner = quota_base(ARGV[6], ARGV[7], id, f[3], ARGV[8], ARGV[9])
    local main = quota_base(ARGV[6], ARGV[7], id, f[3], ARGV[9], ARGV[9])
    local from = tonumber(f[2] or '0') or 0
    if not owners[owner] then
      owners[owner] = {from = from, main = main}
      order[#order + 1] = owner
    elseif from < owners[owner].from then
      owners[owner].from = from
    end
  end
end

local slots = {}
for _, owner in ipairs(order) do
  local lim = quota_limits(owner, owners[owner].main)
  local q = redis.call('HMGET', owner .. ':info', 'cooldown_until', 'learned_limit',
                       'learned_until', 'probe_at')
  local quota, limit = tonumber(lim[2] or ''), effective_limit(lim[1], q[2], q[3], q[4], now)
  if quota and limit then
    local left = quota - (tonumber(redis.call('HGET', owner .. ':daily', day) or '0') or 0)
    local start = math.max(now, owners[owner].from, tonumber(q[1] or '0') or 0)
    if start >= next_day then left = 0 end
    local entries = redis.call('ZRANGEBYSCORE', owner .. ':minute_window', now - window_ms,
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
if ARGV[10] == '1' then return math.max(0, at - now) end
redis.call('ZADD', KEYS[2], at, ARGV[4])
redis.call('PEXPIRE', KEYS[2], math.max(1, at - now) + 2 * window_ms)
return math.max(0, at - now)
