-- Removes a node from the directory once its heartbeat expired and it owns
-- no room any more.
--
-- KEYS[1] heartbeat key    KEYS[2] node's rooms set    KEYS[3] nodes hash
-- ARGV[1] node id
--
-- Returns {"FORGOTTEN"} or {"KEPT"}.
if redis.call("EXISTS", KEYS[1]) == 1 or redis.call("SCARD", KEYS[2]) > 0 then
  return {"KEPT"}
end
if redis.call("HDEL", KEYS[3], ARGV[1]) == 0 then
  return {"KEPT"}
end
redis.call("DEL", KEYS[2])
return {"FORGOTTEN"}
