-- revoke_token: drops a token's shared entry (or replaces it with a
-- refusal), bumps the revocation counter and publishes the revocation.
--
-- KEYS[1]  the revocation counter (...:gen)
-- KEYS[2]  the token's entry (...:t:{hash})
-- ARGV[1]  the revocation channel
-- ARGV[2]  the message before the counter (encoded in Rust, `messages`)
-- ARGV[3]  the message after the counter
-- ARGV[4]  how long to keep the token as refused, ms (0: drop the entry)
-- ARGV[5]  the refusal, sealed for KEYS[2] ('' when ARGV[4] is 0)
-- ARGV[6]  how far the counter moves: random, 1 to 2^32 - 1 (see below)
--
-- Returns the new counter, which the message carries.
--
-- The counter moves by a random step, not by one: a counter rolled back
-- (a failover that lost the last writes, a restart without persistence)
-- and moved again lands on a value it had before only by chance (2^-32),
-- so an instance whose checkpoint is that value still sees that it may
-- have missed revocations. Past 17 digits it starts over at the step.
local v = redis.call('GET', KEYS[1])
local g
if v and (#v >= 18 or not string.match(v, '^%d+$')) then
  redis.call('SET', KEYS[1], ARGV[6])
  g = ARGV[6]
else
  g = redis.call('INCRBY', KEYS[1], ARGV[6])
end
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[4])
else
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[1], ARGV[2] .. g .. ARGV[3])
return g
