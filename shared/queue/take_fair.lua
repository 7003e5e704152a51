-- Take the next fresh id by fair share: from the queued team with the least recent use
-- of the pool for its weight — its ids taken within the last ARGV[5] ms (two rate
-- windows) / weight, the smallest first (then the larger weight, then the team name).
-- A request holds its key's slot for a window, so that count is the team's share of the
-- pool lately; a team with nothing queued is not looked at (it costs nothing), a team
-- alone is taken back to back.
-- KEYS: the set of teams queued, in-flight list
-- ARGV: team list prefix, use zset prefix, caps hash prefix, task_info prefix, use (ms)
-- (share.lua's functions are defined first: `fair.with_share`)
local now = now_ms()
local span = tonumber(ARGV[5])
local best, best_share, best_weight
for _, team in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('LLEN', ARGV[1] .. team) == 0 then
    redis.call('SREM', KEYS[1], team)
  else
    local share, weight = team_share(ARGV[3], ARGV[2], team, now, span)
    if not best or goes_first(team, share, weight, best, best_share, best_weight) then
      best, best_share, best_weight = team, share, weight
    end
  end
end
if not best then return false end
local id = redis.call('RPOP', ARGV[1] .. best)
record_use(ARGV[2], best, id, now, span)
redis.call('LPUSH', KEYS[2], id)
redis.call('HSET', ARGV[4] .. id, 'status', 'delivering')
return id
