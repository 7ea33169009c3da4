-- Gives up a node's ownership of a room, so that another node adopts it.
--
-- KEYS[1] room hash     KEYS[2] releasing node's rooms set
-- KEYS[3] unowned set   KEYS[4] rejected-writes counter
-- ARGV[1] room id       ARGV[2] lease node      ARGV[3] lease epoch
--
-- Returns {"OK"}, {"MISSING"} or {"FENCED"}.
local room_id = ARGV[1]
local stored = redis.call("HMGET", KEYS[1], "owner", "epoch")
if not stored[2] then
  return {"MISSING"}
end
if stored[1] ~= ARGV[2] or stored[2] ~= ARGV[3] then
  redis.call("INCR", KEYS[4])
  return {"FENCED"}
end
redis.call("HSET", KEYS[1], "owner", "")
redis.call("SREM", KEYS[2], room_id)
redis.call("SADD", KEYS[3], room_id)
return {"OK"}
