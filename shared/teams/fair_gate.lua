-- The worker's fair gate (Cloud Tasks): may this delivery of team ARGV[1] take the pool's
-- next slot? The team with the fewest pool slots in use for its weight goes first —
-- its deliveries let through within the last ARGV[6] ms (two rate windows) / weight,
-- then the larger weight,
-- then the team name —
-- among the teams waiting: a deferred team counts as waiting until ARGV[3] ms from now
-- (its delivery comes back before); let through, it stops waiting. A team with nothing
-- queued costs nothing, a team alone is never held back by another.
-- KEYS: waiting zset (team -> until ms)
-- ARGV: team, slot near ('1'), how long a deferred team counts as waiting (ms), the caps
-- key prefix, the use zset prefix, how long a delivery counts in use (ms), a member
-- Returns 1 (take the slot) or 0 (defer).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)

local function share(team)
  local weight = tonumber(redis.call('HGET', ARGV[4] .. team, 'weight') or '1') or 1
  if weight <= 0 then weight = 1 end
  local used = redis.call('ZCOUNT', ARGV[5] .. team, '(' .. (now - window), '+inf')
  return used / weight, weight
end

local team = ARGV[1]
local mine, my_weight = share(team)
local held = ARGV[2] ~= '1'
if not held then
  for _, other in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if other ~= team then
      local theirs, weight = share(other)
      if theirs < mine or (theirs == mine and (weight > my_weight
          or (weight == my_weight and other < team))) then
        held = true
        break
      end
    end
  end
end
if held then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), team)
  return 0
end
local use = ARGV[5] .. team
redis.call('ZREMRANGEBYSCORE', use, '-inf', now - window)
redis.call('ZADD', use, now, ARGV[7])
redis.call('PEXPIRE', use, 2 * window)
redis.call('ZREM', KEYS[1], team)
return 1
