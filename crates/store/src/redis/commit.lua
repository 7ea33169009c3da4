-- Replaces a room's document and appends its new events, if the writer's
-- lease still matches and the room is at the expected version.
--
-- KEYS[1] room hash          KEYS[2] event list
-- KEYS[3] org open set       KEYS[4] writer's rooms set
-- KEYS[5] deadlines zset     KEYS[6] rejected-writes counter
-- ARGV[1] room id            ARGV[2] org
-- ARGV[3] room JSON          ARGV[4] new state
-- ARGV[5] new version        ARGV[6] expected version
-- ARGV[7] lease node         ARGV[8] lease epoch
-- ARGV[9] next deadline (ms) or ""
-- ARGV[10] event channel     ARGV[11..] event JSON, in order
--
-- Returns {"OK"}, {"MISSING"}, {"FENCED"} or {"VERSION", stored version}.
-- Every check runs before the first write, so a rejected commit changes
-- nothing but the rejected-writes counter.
local room_id = ARGV[1]
local stored = redis.call("HMGET", KEYS[1], "org", "owner", "epoch", "version")
if not stored[1] or stored[1] ~= ARGV[2] then
  return {"MISSING"}
end
if stored[2] ~= ARGV[7] or stored[3] ~= ARGV[8] then
  redis.call("INCR", KEYS[6])
  return {"FENCED"}
end
if stored[4] ~= ARGV[6] then
  return {"VERSION", stored[4] or ""}
end

local state = ARGV[4]
redis.call("HSET", KEYS[1], "doc", ARGV[3], "version", ARGV[5], "state", state)
for i = 11, #ARGV do
  redis.call("RPUSH", KEYS[2], ARGV[i])
  redis.call("PUBLISH", ARGV[10], ARGV[i])
end

if state == "closed" then
  -- A closed room has no owner, counts against no limit and has no timer.
  redis.call("HSET", KEYS[1], "owner", "")
  redis.call("SREM", KEYS[4], room_id)
  redis.call("SREM", KEYS[3], room_id)
  redis.call("ZREM", KEYS[5], room_id)
elseif ARGV[9] ~= "" then
  redis.call("ZADD", KEYS[5], ARGV[9], room_id)
else
  redis.call("ZREM", KEYS[5], room_id)
end
return {"OK"}
