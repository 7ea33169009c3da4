-- Stores a new room with its first events, owned by the creating node.
--
-- KEYS[1] room hash            KEYS[2] event list
-- KEYS[3] org rooms set        KEYS[4] org open set
-- KEYS[5] creator's rooms set  KEYS[6] deadlines zset
-- KEYS[7] request key, present only with a request id
-- ARGV[1] key prefix   ARGV[2] room id      ARGV[3] org
-- ARGV[4] room JSON    ARGV[5] state        ARGV[6] version
-- ARGV[7] owner node   ARGV[8] epoch        ARGV[9] request id or ""
-- ARGV[10] max open rooms or ""             ARGV[11] next deadline (ms) or ""
-- ARGV[12] event channel                    ARGV[13..] event JSON, in order
--
-- Returns {"NEW"}, {"EXISTING", room JSON} or {"OPEN_LIMIT"}.
local prefix, room_id, org = ARGV[1], ARGV[2], ARGV[3]
local request_id = ARGV[9]

-- A request id seen before returns the room made then, unless that room was
-- deleted since.
if request_id ~= "" then
  local existing = redis.call("GET", KEYS[7])
  if existing then
    local doc = redis.call("HGET", prefix .. ":room:{" .. existing .. "}", "doc")
    if doc then
      return {"EXISTING", doc}
    end
  end
end

-- A retried create of the same room must not append its events twice.
local stored = redis.call("HGET", KEYS[1], "doc")
if stored then
  return {"EXISTING", stored}
end

local max_open = ARGV[10]
if max_open ~= "" and redis.call("SCARD", KEYS[4]) >= tonumber(max_open) then
  return {"OPEN_LIMIT"}
end

local state = ARGV[5]
local closed = state == "closed"
local owner = ARGV[7]
if closed then
  owner = ""
end
redis.call("HSET", KEYS[1],
  "doc", ARGV[4], "org", org, "owner", owner, "epoch", ARGV[8],
  "version", ARGV[6], "state", state, "request", request_id)
redis.call("SADD", KEYS[3], room_id)
if not closed then
  redis.call("SADD", KEYS[4], room_id)
  redis.call("SADD", KEYS[5], room_id)
  if ARGV[11] ~= "" then
    redis.call("ZADD", KEYS[6], ARGV[11], room_id)
  end
end
if request_id ~= "" then
  redis.call("SET", KEYS[7], room_id)
end
for i = 13, #ARGV do
  redis.call("RPUSH", KEYS[2], ARGV[i])
  redis.call("PUBLISH", ARGV[12], ARGV[i])
end
return {"NEW"}
