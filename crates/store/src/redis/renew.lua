-- Renews a node's heartbeat, only while it has not expired, and stores the
-- node's latest info in the directory.
--
-- KEYS[1] heartbeat key    KEYS[2] nodes hash
-- ARGV[1] NodeInfo JSON    ARGV[2] heartbeat TTL (ms)    ARGV[3] node id
--
-- Returns {"OK"} or {"EXPIRED"}.
if not redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2], "XX") then
  return {"EXPIRED"}
end
redis.call("HSET", KEYS[2], ARGV[3], ARGV[1])
return {"OK"}
