-- Apply a probe's verdict to a disabled key.
-- KEYS[1] info hash, KEYS[2] ready zset; ARGV[1] the reason the probe was made for,
-- ARGV[2] enable | keep | reason, ARGV[3] new reason, ARGV[4] now ms, ARGV[5] key id.
-- Nothing happens when the key changed meanwhile (an operator disabled or enabled it).
if redis.call('HGET', KEYS[1], 'status') ~= 'disabled'
   or (redis.call('HGET', KEYS[1], 'disabled_reason') or '') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'last_probe_at', ARGV[4])
if ARGV[2] == 'enable' then
  redis.call('HSET', KEYS[1], 'status', 'active', 'consecutive_failures', 0,
             'cooldown_until', 0, 'announced_until', 0, 'disabled_reason', '')
  redis.call('ZADD', KEYS[2], 0, ARGV[5])
elseif ARGV[2] == 'reason' then
  redis.call('HSET', KEYS[1], 'disabled_reason', ARGV[3], 'last_error', ARGV[3])
end
return 1
