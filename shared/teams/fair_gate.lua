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
-- Returns 1 (take the slot) or 0 (defer). (share.lua's functions are defined first.)
local now = now_ms()
local span = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)

local team = ARGV[1]
local mine, my_weight = team_share(ARGV[4], ARGV[5], team, now, span)
local held = ARGV[2] ~= '1'
if not held then
  for _, other in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if other ~= team then
      local theirs, weight = team_share(ARGV[4], ARGV[5], other, now, span)
      if goes_first(other, theirs, weight, team, mine, my_weight) then
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
record_use(ARGV[5], team, ARGV[7], now, span)
redis.call('ZREM', KEYS[1], team)
return 1
