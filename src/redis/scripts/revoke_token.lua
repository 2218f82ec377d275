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
--
-- Returns the new counter, which the message carries.
local g = redis.call('INCR', KEYS[1])
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[4])
else
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[1], ARGV[2] .. g .. ARGV[3])
return g
