//! Storage of rooms, their event logs and the per-org room definitions.
//!
//! - [`Store`]: the interface the actors and the server use.
//! - [`MemoryStore`]: the default, for one node; nothing survives a restart.
//! - [`RedisStore`]: durable, shared by every node of a cluster.
//! - [`StoreError`]: failures, split by whether the write may have applied.
//! - [`ownership`]: node ids, leases and the [`NodeDirectory`] of live nodes.
//!
//! A store applies each change of a room (the new room record plus its
//! events) atomically. It applies it only when the room is still at the
//! version the writer read and still owned under the writer's [`Lease`], so
//! neither a stale copy nor a node that lost the room can overwrite it.

mod error;
mod memory;
pub mod ownership;
mod redis;

use async_trait::async_trait;
use roomd_model::filter::SortOrder;
use roomd_model::{Event, Filter, Principal, Room, RoomDefinition, RoomId};
use tokio::sync::broadcast;

pub use error::{StoreError, StoreResult};
pub use memory::MemoryStore;
pub use ownership::{Lease, Location, NodeDirectory, NodeId, NodeInfo, NodeStatus};
pub use redis::{RedisConfig, RedisStore};

/// Outcome of [`Store::create_room`].
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// The room was stored.
    New,
    /// A room was already created with the same request id; here it is.
    Existing(Box<Room>),
}

/// Outcome of [`Store::claim_room`].
#[derive(Debug, Clone, PartialEq)]
pub enum Claimed {
    /// The room is now the claimer's, under this lease.
    Won(Box<Room>, Lease),
    /// The record no longer matches what the claimer saw: another node
    /// claimed it first, or it closed, or it is gone. Locate it again.
    Lost,
}

/// One page of [`Store::find_rooms`].
#[derive(Debug, Clone, PartialEq)]
pub struct RoomPage {
    pub rooms: Vec<Room>,
    /// Offset of the next page, if there is one.
    pub next_offset: Option<usize>,
}

/// A query of [`Store::find_rooms`].
#[derive(Debug, Clone)]
pub struct RoomQuery<'a> {
    pub org: &'a str,
    /// Only rooms this principal may read are returned.
    pub principal: &'a Principal,
    pub filter: &'a Filter,
    pub order: &'a SortOrder,
    pub offset: usize,
    pub limit: usize,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Names the implementation in logs: `memory` or `redis`.
    fn kind(&self) -> &'static str;

    /// Stores a new room with its first events, owned under `lease`. With a
    /// `request_id` already seen in the org, stores nothing and returns the
    /// room made then. With `max_open_rooms`, fails with
    /// [`StoreError::OpenRoomLimit`] when the org already has that many rooms
    /// that are not closed, counted across every node.
    async fn create_room(
        &self,
        room: &Room,
        events: &[Event],
        request_id: Option<&str>,
        lease: &Lease,
        max_open_rooms: Option<u32>,
    ) -> StoreResult<Created>;

    /// Loads a room of `org`; `None` when it does not exist there.
    async fn load_room(&self, org: &str, room_id: RoomId) -> StoreResult<Option<Room>>;

    /// Reads which org a room belongs to and who owns it; `None` when it
    /// does not exist. The caller checks the org.
    async fn locate(&self, room_id: RoomId) -> StoreResult<Option<Location>>;

    /// Replaces the room and appends `events`, if the stored room is still at
    /// `expected_version` and still held under `lease`. A room that closes
    /// leaves its owner. Fails with [`StoreError::Fenced`] when the lease is
    /// stale.
    async fn commit(
        &self,
        room: &Room,
        events: &[Event],
        expected_version: u64,
        lease: &Lease,
    ) -> StoreResult<()>;

    /// Appends the room's final `events` and removes the room, if the stored
    /// room is still at `expected_version`. An open room needs its `lease`;
    /// a closed room has no owner and takes `None`.
    async fn delete_room(
        &self,
        room: &Room,
        events: &[Event],
        expected_version: u64,
        lease: Option<&Lease>,
    ) -> StoreResult<()>;

    /// Makes `node` the owner of a room that is not closed, with the epoch
    /// one above `seen`. Applies only while the record still holds what the
    /// claimer located: `seen.owner` (whose heartbeat the claimer found
    /// expired, or `None` for a released room) at `seen.epoch`.
    async fn claim_room(
        &self,
        room_id: RoomId,
        seen: &Location,
        node: &NodeId,
    ) -> StoreResult<Claimed>;

    /// Gives up ownership of a room, so that another node adopts it. Fails
    /// with [`StoreError::Fenced`] when the lease is stale.
    async fn release_room(&self, room_id: RoomId, lease: &Lease) -> StoreResult<()>;

    /// Returns one page of the org's rooms that match a filter.
    async fn find_rooms(&self, query: RoomQuery<'_>) -> StoreResult<RoomPage>;

    /// Returns up to `limit` events of a room, from sequence number
    /// `from_seq` on.
    async fn read_events(
        &self,
        org: &str,
        room_id: RoomId,
        from_seq: u64,
        limit: usize,
    ) -> StoreResult<Vec<Event>>;

    /// Subscribes to the events the store commits for a room from now on.
    /// A subscriber that falls behind receives `Lagged` and reads the missing
    /// events back with [`Store::read_events`].
    fn subscribe(&self, room_id: RoomId) -> broadcast::Receiver<Event>;

    async fn put_definition(&self, definition: &RoomDefinition) -> StoreResult<()>;

    async fn get_definition(&self, org: &str) -> StoreResult<Option<RoomDefinition>>;
}
