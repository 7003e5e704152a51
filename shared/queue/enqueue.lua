-- Record task_info (retry count reset) and queue the id: later on the delayed ZSet, now
-- on the ready list, or (a team given: FAIR_SHARE) on the fair ZSet at its virtual finish
-- tag max(virtual time, the team's last tag) + 1 / weight: weighted fair queuing, where
-- a team that had nothing queued starts from the virtual time (its idle time earns it
-- nothing) and a team alone is taken back to back.
-- KEYS: task_info, ready list, delayed zset, fair zset, fair tags hash, fair clock, the
-- team's caps hash (its `weight`)
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
  if redis.call('ZSCORE', KEYS[4], ARGV[1]) then return 1 end  -- queued already
  local weight = tonumber(redis.call('HGET', KEYS[7], 'weight') or '1') or 1
  if weight <= 0 then weight = 1 end
  local clock = tonumber(redis.call('GET', KEYS[6]) or '0') or 0
  local last = tonumber(redis.call('HGET', KEYS[5], ARGV[9]) or '0') or 0
  local tag = math.max(clock, last) + 1 / weight
  redis.call('HSET', KEYS[5], ARGV[9], string.format('%.17g', tag))
  redis.call('ZADD', KEYS[4], string.format('%.17g', tag), ARGV[1])
  -- a consumer blocked on the empty ready list wakes up and looks at the fair ZSet
  if redis.call('LLEN', KEYS[2]) == 0 then redis.call('LPUSH', KEYS[2], ARGV[8]) end
else
  redis.call('LPUSH', KEYS[2], ARGV[1])
end
return 1
