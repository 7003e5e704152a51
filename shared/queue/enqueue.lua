-- Record task_info (retry count reset) and queue the id, now or on the delayed ZSet.
redis.call('HSET', KEYS[1], 'status', 'queued', 'created_at', ARGV[3], 'retry_count', 0,
           'generation', ARGV[6], 'planned', ARGV[7])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'url', ARGV[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
if tonumber(ARGV[5]) > 0 then
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
  local first = redis.call('ZRANGE', KEYS[3], 0, 0)
  if first[1] == ARGV[1] then redis.call('LPUSH', KEYS[2], ARGV[8]) end
else
  redis.call('LPUSH', KEYS[2], ARGV[1])
end
return 1
