//! Names of the Redis keys and channels of one [`super::RedisStore`].
//!
//! The Lua scripts build a few of these names themselves: the rooms set of
//! a room's previous owner, the room hash of an earlier request id, and the
//! request key of a deleted room. Those formats must match the ones here.

use roomd_model::RoomId;

/// Builds every key name from the configured prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// HASH with the room's JSON document and its ownership fields.
    pub(super) fn room(&self, room_id: RoomId) -> String {
        format!("{}:room:{{{room_id}}}", self.prefix)
    }

    /// LIST of the room's event JSON; event `seq` n is at index n - 1.
    pub(super) fn events(&self, room_id: RoomId) -> String {
        format!("{}:events:{{{room_id}}}", self.prefix)
    }

    /// Pub/sub channel that every write script publishes the room's new
    /// events on.
    pub(super) fn channel(&self, room_id: RoomId) -> String {
        format!("{}:room-events:{{{room_id}}}", self.prefix)
    }

    /// Parses the room id back out of a name built by [`Keys::channel`].
    pub(super) fn room_of_channel(&self, channel: &str) -> Option<RoomId> {
        channel
            .strip_prefix(&self.prefix)?
            .strip_prefix(":room-events:{")?
            .strip_suffix('}')?
            .parse()
            .ok()
    }

    /// SET of the ids of every room of the org.
    pub(super) fn org_rooms(&self, org: &str) -> String {
        format!("{}:org:{org}:rooms", self.prefix)
    }

    /// SET of the ids of the org's rooms that are not closed.
    pub(super) fn org_open(&self, org: &str) -> String {
        format!("{}:org:{org}:open", self.prefix)
    }

    /// STRING with the id of the room created for a request id.
    pub(super) fn request(&self, org: &str, request_id: &str) -> String {
        format!("{}:org:{org}:request:{request_id}", self.prefix)
    }

    /// STRING with the org's room definition JSON.
    pub(super) fn definition(&self, org: &str) -> String {
        format!("{}:definition:{org}", self.prefix)
    }

    /// SET of the ids of the rooms a node owns.
    pub(super) fn node_rooms(&self, node: &str) -> String {
        format!("{}:node:{node}:rooms", self.prefix)
    }

    /// STRING with the node's `NodeInfo` JSON, which expires with the
    /// node's heartbeat.
    pub(super) fn node_alive(&self, node: &str) -> String {
        format!("{}:node:{node}:alive", self.prefix)
    }

    /// HASH of node id to the `NodeInfo` JSON of every registered node.
    pub(super) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// SET of the ids of open rooms that their owner released.
    pub(super) fn unowned(&self) -> String {
        format!("{}:unowned", self.prefix)
    }

    /// ZSET of room id to the room's next deadline, in milliseconds since
    /// the Unix epoch.
    pub(super) fn deadlines(&self) -> String {
        format!("{}:deadlines", self.prefix)
    }

    /// Counter of writes that a script rejected as FENCED.
    pub(super) fn rejected(&self) -> String {
        format!("{}:stats:rejected", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_keys_share_hash_tag() {
        let keys = Keys::new("roomd");
        let room_id = RoomId::generate();
        let tag = format!("{{{room_id}}}");
        assert!(keys.room(room_id).ends_with(&tag));
        assert!(keys.events(room_id).ends_with(&tag));
        assert!(keys.channel(room_id).ends_with(&tag));
    }

    #[test]
    fn channel_round_trips_room_id() {
        let keys = Keys::new("app:roomd");
        let room_id = RoomId::generate();
        assert_eq!(keys.room_of_channel(&keys.channel(room_id)), Some(room_id));
    }

    #[test]
    fn foreign_channel_has_no_room() {
        let keys = Keys::new("roomd");
        let room_id = RoomId::generate();
        let other = Keys::new("other");
        assert_eq!(keys.room_of_channel(&other.channel(room_id)), None);
        assert_eq!(keys.room_of_channel("roomd:room-events:{not-a-uuid}"), None);
        assert_eq!(keys.room_of_channel(&keys.room(room_id)), None);
    }
}
