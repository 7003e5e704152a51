-- Replace a window entry's token count, keeping its time.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
local prefix = string.match(ARGV[1], '^(.*):%d+$') or ARGV[1]
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], score, prefix .. ':' .. ARGV[2])
return 1
