-- Fair share across teams (docs/decisions.md, "Fair share across teams"): the rule both
-- the local queue's take (take_fair.lua) and the worker's gate (fair_gate.lua) apply,
-- prepended to each by `fair.with_share`.

-- Now in epoch ms, by Redis's clock (every process agrees on it).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A team's recent use of the pool for its weight: its uses (the zset under use_prefix)
-- within the last `span` ms, over its weight (the caps hash's 'weight'; 1 when unset or
-- not positive). Returns the share and the weight.
local function team_share(caps_prefix, use_prefix, team, now, span)
  local weight = tonumber(redis.call('HGET', caps_prefix .. team, 'weight') or '1') or 1
  if weight <= 0 then weight = 1 end
  local used = redis.call('ZCOUNT', use_prefix .. team, '(' .. (now - span), '+inf')
  return used / weight, weight
end

-- Whether team `a` (share, weight) goes before team `b`: the smaller share, then the
-- larger weight, then the name.
local function goes_first(a, a_share, a_weight, b, b_share, b_weight)
  return a_share < b_share or (a_share == b_share and (a_weight > b_weight
    or (a_weight == b_weight and a < b)))
end

-- Count one use of the pool by `team` now (kept `span` ms, the key a while longer).
local function record_use(use_prefix, team, member, now, span)
  local use = use_prefix .. team
  redis.call('ZREMRANGEBYSCORE', use, '-inf', now - span)
  redis.call('ZADD', use, now, member)
  redis.call('PEXPIRE', use, 2 * span)
end

