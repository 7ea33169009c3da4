-- Makes a node the owner of a room that is not closed, one epoch above the
-- owner the claimer located, if the record still holds what it located.
--
-- KEYS[1] room hash      KEYS[2] unowned set      KEYS[3] claimer's rooms set
-- ARGV[1] key prefix     ARGV[2] room id          ARGV[3] located org
-- ARGV[4] located owner, "" for a released room
-- ARGV[5] located epoch  ARGV[6] claiming node
--
-- Returns {"WON", room JSON} or {"LOST"}.
local prefix, room_id = ARGV[1], ARGV[2]
local seen_owner = ARGV[4]
local stored = redis.call("HMGET", KEYS[1], "org", "owner", "epoch", "state", "doc")
if not stored[1] or stored[1] ~= ARGV[3] then
  return {"LOST"}
end
if (stored[2] or "") ~= seen_owner or stored[3] ~= ARGV[5] or stored[4] == "closed" then
  return {"LOST"}
end

redis.call("HINCRBY", KEYS[1], "epoch", 1)
redis.call("HSET", KEYS[1], "owner", ARGV[6])
if seen_owner == "" then
  redis.call("SREM", KEYS[2], room_id)
else
  redis.call("SREM", prefix .. ":node:" .. seen_owner .. ":rooms", room_id)
end
redis.call("SADD", KEYS[3], room_id)
return {"WON", stored[5] or ""}
