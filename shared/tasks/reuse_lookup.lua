-- Reads the near-duplicate index: ARGV holds field names, one per KEYS[i]; answers the
-- ids found (8 hex digits each) as one string, in one round trip.
local found = {}
for i, key in ipairs(KEYS) do
  local ids = redis.call('HGET', key, ARGV[i])
  if ids then found[#found + 1] = ids end
end
return table.concat(found)
