-- Take the next fresh id by fair share: from the queued team with the least recent use
-- of the pool for its weight — its ids taken within the last ARGV[5] ms (two rate
-- windows) / weight, the smallest first (then the larger weight, then the team name).
-- A request holds its key's slot for a window, so that count is the team's share of the
-- pool lately; a team with nothing queued is not looked at (it costs nothing), a team
-- alone is taken back to back.
-- KEYS: the set of teams queued, in-flight list
-- ARGV: team list prefix, use zset prefix, caps hash prefix, task_info prefix, use (ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[5])
local best, best_share, best_weight
for _, team in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('LLEN', ARGV[1] .. team) == 0 then
    redis.call('SREM', KEYS[1], team)
  else
    local weight = tonumber(redis.call('HGET', ARGV[3] .. team, 'weight') or '1') or 1
    if weight <= 0 then weight = 1 end
    local used = redis.call('ZCOUNT', ARGV[2] .. team, '(' .. (now - window), '+inf')
    local share = used / weight
    if not best or share < best_share or (share == best_share and (weight > best_weight
        or (weight == best_weight and team < best))) then
      best, best_share, best_weight = team, share, weight
    end
  end
end
if not best then return false end
local id = redis.call('RPOP', ARGV[1] .. best)
local use = ARGV[2] .. best
redis.call('ZREMRANGEBYSCORE', use, '-inf', now - window)
redis.call('ZADD', use, now, id)
redis.call('PEXPIRE', use, 2 * window)
redis.call('LPUSH', KEYS[2], id)
redis.call('HSET', ARGV[4] .. id, 'status', 'delivering')
return id
