-- The worker's fair gate (Cloud Tasks): may this delivery of team ARGV[1] take the pool's
-- next slot? Weighted fair queuing over the teams waiting for one: a team's tag is
-- max(virtual time, its last tag) + 1 / weight, fixed when it starts waiting; the
-- smallest (tag, team) goes first and moves the virtual time to its tag. A deferred team
-- counts as waiting until ARGV[3] ms from now (its delivery comes back before); admitted,
-- it stops waiting: a team with nothing queued costs nothing, a team alone is never held.
-- KEYS: last tags hash, clock, waiting zset (team -> until ms), waiting tags hash
-- ARGV: team, slot near ('1'), how long a deferred team counts as waiting (ms), the caps
-- key prefix. Returns 1 (take the slot) or 0 (defer).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
  redis.call('HDEL', KEYS[4], gone)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local clock = tonumber(redis.call('GET', KEYS[2]) or '0') or 0

local function tag_of(team)
  local waiting = tonumber(redis.call('HGET', KEYS[4], team) or '')
  if waiting then return waiting end
  local weight = tonumber(redis.call('HGET', ARGV[4] .. team, 'weight') or '1') or 1
  if weight <= 0 then weight = 1 end
  local last = tonumber(redis.call('HGET', KEYS[1], team) or '0') or 0
  return math.max(clock, last) + 1 / weight
end

local team = ARGV[1]
local mine = tag_of(team)
local held = ARGV[2] ~= '1'
if not held then
  for _, other in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
    if other ~= team then
      local theirs = tag_of(other)
      if theirs < mine or (theirs == mine and other < team) then held = true; break end
    end
  end
end
if held then
  redis.call('HSETNX', KEYS[4], team, string.format('%.17g', mine))
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), team)
  return 0
end
redis.call('HSET', KEYS[1], team, string.format('%.17g', mine))
if mine > clock then redis.call('SET', KEYS[2], string.format('%.17g', mine)) end
redis.call('ZREM', KEYS[3], team)
redis.call('HDEL', KEYS[4], team)
return 1
