-- revoke_account: drops every live shared entry of an account and its
-- index, bumps the revocation counter and publishes the revocation.
--
-- KEYS[1]  the revocation counter (...:gen)
-- KEYS[2]  the account's index (...:a:{account id})
-- ARGV[1]  the revocation channel
-- ARGV[2]  the message before the counter (encoded in Rust, `messages`)
-- ARGV[3]  the message after the counter
-- ARGV[4]  what precedes a hash in an entry's key (...:t:)
--
-- Returns the new counter, which the message carries.
--
-- Walks the live members of the index only (a set left by an earlier
-- version: all of them). The entries' keys are computed here, from the
-- index: standalone Redis only, not Cluster.
local g = redis.call('INCR', KEYS[1])
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
