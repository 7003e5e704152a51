-- Adds one fingerprint id (ARGV[1], 8 hex digits) to each KEYS[i]'s field ARGV[i + 1] of the
-- near-duplicate index, once (a rerun of a task indexes the same id again).
local id = ARGV[1]
for i, key in ipairs(KEYS) do
  local field = ARGV[i + 1]
  local ids = redis.call('HGET', key, field) or ''
  local present = false
  for at = 1, #ids, 8 do
    if string.sub(ids, at, at + 7) == id then present = true break end
  end
  if not present then redis.call('HSET', key, field, ids .. id) end
end
return #KEYS
