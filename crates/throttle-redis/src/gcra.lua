-- One bucket shared by every gateway replica: GCRA (a token bucket kept as
-- its "theoretical arrival time") with reservations, evaluated atomically on
-- the Redis server, on the server's clock (microseconds).
--
-- KEYS[1]  the bucket: a hash of `tat` and `paused` (paused until)
-- KEYS[2]  the replicas seen lately: a sorted set of replica id -> last seen
-- ARGV[1]  take | pause | check | beat
-- ARGV[2]  this replica's id; empty: do not count this replica as live
-- ARGV[3]  how many replicas are configured to share the budget
-- ARGV[4]  how long a replica counts as live after it was last seen (µs)
-- ARGV[5]  the bucket's interval between tokens (µs)
-- ARGV[6]  the bucket's burst
-- ARGV[7]  take: the longest acceptable wait (µs); pause: its length (µs)
--
-- Returns {granted (0/1), wait (µs), tokens left, pause left (µs), live replicas}.
-- `take` reserves the next slot if it comes within the acceptable wait (the
-- caller sleeps `wait`, then sends), else reserves nothing.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local op = ARGV[1]
local ttl = tonumber(ARGV[4])

if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[2], now, ARGV[2])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[2], math.ceil(ttl / 1000))
local replicas = tonumber(ARGV[3])
local live = math.max(1, math.min(redis.call('ZCARD', KEYS[2]), replicas))
if op == 'beat' then
  return {1, 0, 0, 0, live}
end

-- A configured replica not seen lately may be spending its local fallback
-- share (1/replicas): the live ones share only what is left.
local interval = tonumber(ARGV[5]) * replicas / live
local burst = math.max(1, math.floor(tonumber(ARGV[6]) * live / replicas))
local tau = (burst - 1) * interval

local state = redis.call('HMGET', KEYS[1], 'tat', 'paused')
local tat = math.max(tonumber(state[1]) or now, now)
local paused = tonumber(state[2]) or 0
local granted = 0
local wait = 0

if op == 'pause' then
  paused = math.max(paused, now + tonumber(ARGV[7]))
  -- The platform's bucket is empty: ours too, refilling from now.
  tat = math.max(tat, now + tau + interval)
elseif op == 'take' then
  local at = math.max(tat - tau, paused, now)
  wait = at - now
  if wait <= tonumber(ARGV[7]) then
    granted = 1
    tat = math.max(tat, at) + interval
  end
end

if op == 'pause' or granted == 1 then
  redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat), 'paused', string.format('%.0f', paused))
  -- Once `tat` and the pause are past, the bucket is full: the same as no key.
  redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat, paused) - now) / 1000) + 1000)
end

local left = math.max(0, math.min(burst, math.floor((now + tau - tat) / interval) + 1))
return {granted, math.floor(wait), left, math.floor(math.max(0, paused - now)), live}
