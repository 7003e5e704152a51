-- Done with a delivery; a newer delivery queued meanwhile (re-planned) stays live.
redis.call('LREM', KEYS[1], 0, ARGV[1])
if redis.call('HGET', KEYS[2], 'status') == 'delivering' then
  redis.call('HSET', KEYS[2], 'status', 'delivered')
end
return 1
