-- lookup: the shared answer for a token, or a claim on verifying it.
--
-- KEYS[1]  the revocation counter (...:gen)
-- KEYS[2]  the token's entry (...:t:{hash})
-- KEYS[3]  the token's claim (...:c:{hash})
-- ARGV[1]  how long a claim lives, ms (0: take none)
-- ARGV[2]  this instance's id (the claim's value)
-- ARGV[3]  a value to look past ('' for none): one this instance refused
--
-- Returns {counter, 'found', value, pttl}, or {counter, 'claimed', '', 0}
-- (this instance holds the claim), or {counter, 'busy', '', 0} (another
-- one does). The counter is the ticket of a later store.
--
-- A key of another type than a string (not ours) comes back as the value
-- '<type>': it fails the entry check like any other foreign value, and the
-- store that follows replaces it.
local g = redis.call('GET', KEYS[1]) or '0'
local t = redis.call('TYPE', KEYS[2]).ok
local v = false
if t == 'string' then v = redis.call('GET', KEYS[2]) elseif t ~= 'none' then v = '<' .. t .. '>' end
if v and v ~= ARGV[3] then return {g, 'found', v, redis.call('PTTL', KEYS[2])} end
if tonumber(ARGV[1]) > 0 and not redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[1]) then
  return {g, 'busy', '', 0}
end
return {g, 'claimed', '', 0}
