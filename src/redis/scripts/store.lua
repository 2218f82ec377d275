-- store: writes an upstream answer unless a revocation happened since the
-- lookup that issued the ticket, and releases this instance's claim.
--
-- KEYS[1]  the revocation counter (...:gen)
-- KEYS[2]  the token's entry (...:t:{hash})
-- KEYS[3]  the account's index (...:a:{account id}; unused if not indexed)
-- KEYS[4]  the token's claim (...:c:{hash})
-- ARGV[1]  the ticket: the counter the lookup returned
-- ARGV[2]  the sealed value, or '' (nothing to store: release the claim)
-- ARGV[3]  the entry's TTL, ms
-- ARGV[4]  the token hash, hex (the index member)
-- ARGV[5]  '1' if the entry is an account's (indexed), '0' if not
-- ARGV[6]  this instance's id (a claim is released by its holder only)
--
-- Returns 1.
--
-- The index is a sorted set of hashes scored by their entry's expiry
-- (Redis time, ms): expired members are dropped on each store, and the
-- index expires with its last entry, so it holds the account's live
-- entries only, however long the account stays active. (A set left by an
-- earlier version is replaced: its entries are unsigned, refused anyway.)
if ARGV[2] ~= '' and (redis.call('GET', KEYS[1]) or '0') == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  if ARGV[5] == '1' then
    local now = redis.call('TIME')
    now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    if redis.call('TYPE', KEYS[3]).ok ~= 'zset' then redis.call('DEL', KEYS[3]) end
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[4])
    local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
    redis.call('PEXPIRE', KEYS[3], math.max(1, tonumber(last[2]) - now))
  end
end
if redis.call('TYPE', KEYS[4]).ok == 'string' and redis.call('GET', KEYS[4]) == ARGV[6] then
  redis.call('DEL', KEYS[4])
end
return 1
