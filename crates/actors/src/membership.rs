//! The cluster as room actors see it: this node's id, whether it may
//! serve, and whether another node is alive.

use async_trait::async_trait;
use roomd_store::NodeId;

/// The node's view of the cluster, as the registry consults it before it
/// loads or claims a room.
#[async_trait]
pub trait Membership: Send + Sync + 'static {
    /// This node's current id. It changes after the node fenced itself.
    fn node_id(&self) -> NodeId;

    /// Tells whether this node's own heartbeat is current, so that it may serve
    /// its rooms. A node that could not renew it within the TTL must assume
    /// that others have adopted its rooms.
    fn serving(&self) -> bool;

    /// Tells whether this node is draining: it takes no rooms, and hands off the
    /// ones it has.
    fn draining(&self) -> bool;

    /// Whether `node` is alive. Before a node claims a room from an owner,
    /// it checks here. A node that is not known to be alive after a fresh
    /// look at the directory counts as dead.
    async fn is_alive(&self, node: &NodeId) -> bool;
}

/// The membership of a node that runs alone: it is always serving, and no
/// other node is alive.
pub struct SingleNode {
    id: NodeId,
}

impl SingleNode {
    pub fn new() -> Self {
        SingleNode {
            id: NodeId::generate(),
        }
    }
}

impl Default for SingleNode {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Membership for SingleNode {
    fn node_id(&self) -> NodeId {
        self.id.clone()
    }

    fn serving(&self) -> bool {
        true
    }

    fn draining(&self) -> bool {
        false
    }

    async fn is_alive(&self, node: &NodeId) -> bool {
        *node == self.id
    }
}
