-- revoke_token: drops a token's shared entry (or replaces it with a
-- refusal), bumps the revocation counter and publishes the revocation.
--
-- KEYS[1]  the revocation counter (...:gen)
-- KEYS[2]  the token's entry (...:t:{hash})
-- ARGV[1]  the revocation channel
-- ARGV[2]  this instance's id (the message's sender)
-- ARGV[3]  the token hash, hex (the message's subject)
-- ARGV[4]  '1' if the token is known dead (keep it as refused), '0' if not
-- ARGV[5]  how long to keep it as refused, ms (the negative TTL)
-- ARGV[6]  the refusal, sealed for KEYS[2]
--
-- Returns the new counter, which the message carries.
local g = redis.call('INCR', KEYS[1])
local kind = 't'
if ARGV[4] == '1' and tonumber(ARGV[5]) > 0 then
  redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[5])
  kind = 'r'
else
  redis.call('DEL', KEYS[2])
end
redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. g .. ' ' .. kind .. ' ' .. ARGV[3])
return g
