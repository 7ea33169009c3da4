-- Publishes a room's final events and removes the room with its log and
-- index entries. An open room needs the writer's lease; a closed room has
-- no owner and is deleted without one.
--
-- KEYS[1] room hash        KEYS[2] event list
-- KEYS[3] org rooms set    KEYS[4] org open set
-- KEYS[5] deadlines zset   KEYS[6] unowned set
-- KEYS[7] rejected-writes counter
-- ARGV[1] key prefix       ARGV[2] room id      ARGV[3] org
-- ARGV[4] expected version
-- ARGV[5] lease node or "" ARGV[6] lease epoch or ""
-- ARGV[7] event channel    ARGV[8..] event JSON, in order
--
-- Returns {"OK"}, {"MISSING"}, {"FENCED"} or {"VERSION", stored version}.
local prefix, room_id, org = ARGV[1], ARGV[2], ARGV[3]
local stored = redis.call("HMGET", KEYS[1], "org", "owner", "epoch", "version", "state", "request")
if not stored[1] or stored[1] ~= org then
  return {"MISSING"}
end
local owner = stored[2] or ""
local lease_node = ARGV[5]
if lease_node ~= "" then
  if owner ~= lease_node or stored[3] ~= ARGV[6] then
    redis.call("INCR", KEYS[7])
    return {"FENCED"}
  end
elseif stored[5] ~= "closed" or owner ~= "" then
  redis.call("INCR", KEYS[7])
  return {"FENCED"}
end
if stored[4] ~= ARGV[4] then
  return {"VERSION", stored[4] or ""}
end

for i = 8, #ARGV do
  redis.call("PUBLISH", ARGV[7], ARGV[i])
end
redis.call("DEL", KEYS[1], KEYS[2])
redis.call("SREM", KEYS[3], room_id)
redis.call("SREM", KEYS[4], room_id)
redis.call("SREM", KEYS[6], room_id)
redis.call("ZREM", KEYS[5], room_id)
if owner ~= "" then
  redis.call("SREM", prefix .. ":node:" .. owner .. ":rooms", room_id)
end
local request_id = stored[6]
if request_id and request_id ~= "" then
  local request_key = prefix .. ":org:" .. org .. ":request:" .. request_id
  if redis.call("GET", request_key) == room_id then
    redis.call("DEL", request_key)
  end
end
return {"OK"}
