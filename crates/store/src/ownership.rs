//! Ownership of rooms by nodes, and the directory of live nodes.
//!
//! Each room record names the node that owns it and an ownership `epoch`.
//! A node writes a room only under a [`Lease`] (its node id and the epoch
//! it claimed); the store applies a write only while the lease still
//! matches the record, so a node that lost a room cannot change it.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use roomd_model::RoomId;
use serde::{Deserialize, Serialize};

use crate::StoreResult;

/// Identity of one roomd process in the cluster. A process picks a fresh
/// id every time it starts, and again after it fenced itself, so an id that
/// was declared dead never comes back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(String);

impl NodeId {
    /// Returns a fresh, unique node id.
    pub fn generate() -> Self {
        NodeId(uuid::Uuid::now_v7().to_string())
    }

    /// Wraps an id read back from the store.
    pub fn from_stored(id: impl Into<String>) -> Self {
        NodeId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The right of one node to write one room: the owner and epoch that the
/// room record must still hold for a write to apply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    pub node: NodeId,
    pub epoch: u64,
}

impl Lease {
    /// Returns the lease of the node that creates a room.
    pub fn first(node: NodeId) -> Self {
        Lease { node, epoch: 1 }
    }
}

/// Org and ownership of a stored room, as read by [`crate::Store::locate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub org: String,
    /// The owning node and epoch; `None` for a closed room, and for an open
    /// one that its last owner released.
    pub owner: Option<NodeId>,
    pub epoch: u64,
    pub closed: bool,
}

/// Description of a node, published with every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    /// Address of the node's internal gRPC API, as other nodes dial it.
    pub address: String,
    /// A draining node takes no new rooms and is handing its rooms off.
    pub draining: bool,
    /// Number of rooms the node runs; placement prefers fewer.
    pub rooms: u64,
}

/// One entry of the node directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeStatus {
    /// The heartbeat is current.
    Live(NodeInfo),
    /// The node registered, but its heartbeat expired. Its rooms wait to be
    /// adopted; it leaves the directory once it owns none.
    Dead(NodeId),
}

/// The directory of nodes: registration, heartbeats and liveness. The
/// traffic it causes grows with the number of nodes, never with rooms.
#[async_trait]
pub trait NodeDirectory: Send + Sync + 'static {
    /// Registers a node with a heartbeat that expires after `ttl`.
    async fn register(&self, info: &NodeInfo, ttl: Duration) -> StoreResult<()>;

    /// Renews a node's heartbeat for another `ttl`. Returns `false` when the
    /// heartbeat had already expired: the node was declared dead and must
    /// not serve its rooms any more.
    async fn renew(&self, info: &NodeInfo, ttl: Duration) -> StoreResult<bool>;

    /// Lists every registered node, live or dead.
    async fn nodes(&self) -> StoreResult<Vec<NodeStatus>>;

    /// Removes a node's heartbeat, so that its rooms are adopted at once.
    async fn expire(&self, node: &NodeId) -> StoreResult<()>;

    /// Removes a dead node from the directory if it owns no room any more.
    /// Returns whether it was removed.
    async fn forget(&self, node: &NodeId) -> StoreResult<bool>;

    /// Returns up to `limit` rooms owned by `node`, or, with `None`, rooms
    /// that their owner released. Adoption claims them.
    async fn owned_rooms(&self, node: Option<&NodeId>, limit: usize) -> StoreResult<Vec<RoomId>>;

    /// Returns up to `limit` rooms, not closed, whose next deadline lies
    /// before `before`: timers that should have fired by then. Each node
    /// looks at these, so that a room whose actor is not running (its owner
    /// died unnoticed, or its restart budget ran out) still closes on time.
    async fn overdue_rooms(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<Vec<RoomId>>;
}
