-- Record task_info (retry count reset) and queue the id: later on the delayed ZSet, now
-- on the ready list, or (a team given: FAIR_SHARE) on its team's own list, from which
-- `take_fair.lua` takes by fair share.
-- KEYS: task_info, ready list, delayed zset, the team's list, the set of teams queued
-- ARGV: id, url, now, info ttl, due, generation, planned, wake token, team
redis.call('HSET', KEYS[1], 'status', 'queued', 'created_at', ARGV[3], 'retry_count', 0,
           'generation', ARGV[6], 'planned', ARGV[7])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'url', ARGV[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
if tonumber(ARGV[5]) > 0 then
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
  local first = redis.call('ZRANGE', KEYS[3], 0, 0)
  if first[1] == ARGV[1] then redis.call('LPUSH', KEYS[2], ARGV[8]) end
elseif ARGV[9] ~= '' then
  redis.call('HSET', KEYS[1], 'team', ARGV[9])
  redis.call('LPUSH', KEYS[4], ARGV[1])
  redis.call('SADD', KEYS[5], ARGV[9])
  -- a consumer blocked on the empty ready list wakes up and looks at the teams' lists
  if redis.call('LLEN', KEYS[2]) == 0 then redis.call('LPUSH', KEYS[2], ARGV[8]) end
else
  redis.call('LPUSH', KEYS[2], ARGV[1])
end
return 1
