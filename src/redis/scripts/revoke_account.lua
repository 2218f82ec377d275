-- revoke_account: drops every live shared entry of an account and its
-- index, bumps the revocation counter and publishes the revocation.
--
-- KEYS[1]  the revocation counter (...:gen)
-- KEYS[2]  the account's index (...:a:{account id})
-- ARGV[1]  the revocation channel
-- ARGV[2]  the message before the counter (encoded in Rust, `messages`)
-- ARGV[3]  the message after the counter
-- ARGV[4]  what precedes a hash in an entry's key (...:t:)
-- ARGV[5]  how far the counter moves: random, 1 to 2^32 - 1 (see below)
--
-- Returns the new counter, which the message carries.
--
-- Walks the live members of the index only (a set left by an earlier
-- version: all of them). The entries' keys are computed here, from the
-- index: in a cluster they share the tier's hash tag, so they are in the
-- slot of KEYS[1] and KEYS[2], on this node.
--
-- The counter moves by a random step, not by one: a counter rolled back
-- (a failover that lost the last writes, a restart without persistence)
-- and moved again lands on a value it had before only by chance (2^-32),
-- so an instance whose checkpoint is that value still sees that it may
-- have missed revocations. Past 17 digits it starts over at the step.
local v = redis.call('GET', KEYS[1])
local g
if v and (#v >= 18 or not string.match(v, '^%d+$')) then
  redis.call('SET', KEYS[1], ARGV[5])
  g = ARGV[5]
else
  g = redis.call('INCRBY', KEYS[1], ARGV[5])
end
local t = redis.call('TYPE', KEYS[2]).ok
local members = {}
if t == 'zset' then
  local now = redis.call('TIME')
  now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  members = redis.call('ZRANGEBYSCORE', KEYS[2], now, '+inf')
elseif t == 'set' then
  members = redis.call('SMEMBERS', KEYS[2])
end
for _, h in ipairs(members) do
  redis.call('DEL', ARGV[4] .. h)
end
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. g .. ARGV[3])
return g
