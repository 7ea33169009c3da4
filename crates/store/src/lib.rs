//! Storage of rooms, their event logs and the per-org room definitions.
//!
//! - [`Store`]: the interface the actors and the server use.
//! - [`MemoryStore`]: the default, for one node; nothing survives a restart.
//! - [`StoreError`]: failures, split by whether the write may have applied.
//!
//! A store applies each change of a room (the new room record plus its
//! events) atomically. It applies it only when the room is still at the
//! version the writer read, so a writer with a stale copy cannot overwrite
//! a newer one.

mod error;
mod memory;

use async_trait::async_trait;
use roomd_model::filter::SortOrder;
use roomd_model::{Event, Filter, Principal, Room, RoomDefinition, RoomId};
use tokio::sync::broadcast;

pub use error::{StoreError, StoreResult};
pub use memory::MemoryStore;

/// Outcome of [`Store::create_room`].
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// The room was stored.
    New,
    /// A room was already created with the same request id; here it is.
    Existing(Box<Room>),
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

    /// Stores a new room with its first events. With a `request_id` already
    /// seen in the org, stores nothing and returns the room made then.
    async fn create_room(
        &self,
        room: &Room,
        events: &[Event],
        request_id: Option<&str>,
    ) -> StoreResult<Created>;

    /// Loads a room of `org`; `None` when it does not exist there.
    async fn load_room(&self, org: &str, room_id: RoomId) -> StoreResult<Option<Room>>;

    /// Replaces the room and appends `events`, if the stored room is still at
    /// `expected_version`.
    async fn commit(&self, room: &Room, events: &[Event], expected_version: u64)
    -> StoreResult<()>;

    /// Appends the room's final `events` and removes the room, if the stored
    /// room is still at `expected_version`.
    async fn delete_room(
        &self,
        room: &Room,
        events: &[Event],
        expected_version: u64,
    ) -> StoreResult<()>;

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
