-- Take the fresh id with the smallest virtual finish tag (weighted fair queuing across
-- teams) onto the in-flight list; the virtual time moves to its tag.
-- KEYS: fair zset, fair clock, in-flight list; ARGV: the task_info key prefix
local head = redis.call('ZPOPMIN', KEYS[1])
if #head == 0 then return false end
local id, tag = head[1], tonumber(head[2])
if tag > (tonumber(redis.call('GET', KEYS[2]) or '0') or 0) then
  redis.call('SET', KEYS[2], head[2])
end
redis.call('LPUSH', KEYS[3], id)
redis.call('HSET', ARGV[1] .. id, 'status', 'delivering')
return id
