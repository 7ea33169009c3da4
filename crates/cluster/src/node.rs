//! [`ClusterNode`]: this node's identity, heartbeat state and view of the
//! other nodes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use roomd_actors::Membership;
use roomd_store::{NodeDirectory, NodeId, NodeInfo, NodeStatus, StoreResult};
use tokio::time::Instant;
use tracing::{debug, info};

/// Rooms a node may run above the least loaded one and still take a new
/// room itself, which saves the forwarding hop.
const PLACEMENT_SLACK_ROOMS: u64 = 16;
/// Share of the least loaded node's rooms that is also tolerated.
const PLACEMENT_SLACK_SHARE: u64 = 10;

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// How long a heartbeat lasts without renewal.
    pub node_ttl: Duration,
    /// Address of this node's internal gRPC API, as other nodes dial it.
    pub advertise_address: String,
}

impl ClusterConfig {
    /// Time between two heartbeats: a third of the TTL, so that one lost
    /// renewal does not expire the node.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.node_ttl / 3).max(Duration::from_millis(50))
    }

    /// Time between two looks at the directory for dead nodes and released
    /// rooms.
    pub fn scan_interval(&self) -> Duration {
        (self.node_ttl / 5).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

/// Target node of a new room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Here,
    /// Another node, with the address of its internal API.
    Elsewhere(NodeInfo),
}

/// The node's view of the cluster, shared by the heartbeat, the adoption
/// scan, the registry (through [`Membership`]) and the API.
pub struct ClusterNode {
    directory: Arc<dyn NodeDirectory>,
    config: ClusterConfig,
    id: RwLock<NodeId>,
    draining: AtomicBool,
    /// When the last renewal that the directory accepted was sent; the node
    /// serves only while this is younger than the TTL.
    renewed_at: Mutex<Instant>,
    view: RwLock<View>,
    /// Number of rooms this node runs, reported with each heartbeat.
    rooms: Mutex<u64>,
}

/// The directory as last read.
#[derive(Default)]
struct View {
    live: HashMap<NodeId, NodeInfo>,
    dead: HashSet<NodeId>,
}

impl ClusterNode {
    /// Registers a fresh node id in the directory.
    pub async fn join(
        directory: Arc<dyn NodeDirectory>,
        config: ClusterConfig,
    ) -> StoreResult<Arc<Self>> {
        let node = Arc::new(ClusterNode {
            directory,
            config,
            id: RwLock::new(NodeId::generate()),
            draining: AtomicBool::new(false),
            renewed_at: Mutex::new(Instant::now()),
            view: RwLock::new(View::default()),
            rooms: Mutex::new(0),
        });
        node.register().await?;
        node.refresh().await?;
        Ok(node)
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn directory(&self) -> &Arc<dyn NodeDirectory> {
        &self.directory
    }

    /// Returns the description this node publishes with its heartbeat.
    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            id: self.node_id(),
            address: self.config.advertise_address.clone(),
            draining: self.draining(),
            rooms: *self.rooms.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    pub fn set_room_count(&self, rooms: usize) {
        *self.rooms.lock().unwrap_or_else(|e| e.into_inner()) = rooms as u64;
    }

    /// Stops taking rooms. The next heartbeat announces it to the other
    /// nodes.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Registers the current id with a fresh heartbeat.
    async fn register(&self) -> StoreResult<()> {
        let info = self.info();
        let sent_at = Instant::now();
        self.directory.register(&info, self.config.node_ttl).await?;
        self.mark_renewed(sent_at);
        info!(node_id = %info.id, address = %info.address, "node registered");
        Ok(())
    }

    /// Renews the heartbeat. Returns `false` when the directory had already
    /// declared this node dead.
    pub async fn renew(&self) -> StoreResult<bool> {
        let sent_at = Instant::now();
        let renewed = self
            .directory
            .renew(&self.info(), self.config.node_ttl)
            .await?;
        if renewed {
            self.mark_renewed(sent_at);
        }
        Ok(renewed)
    }

    /// Gives up the current id, which other nodes then treat as dead, and
    /// registers under a fresh one. The caller has stopped every room
    /// actor first.
    pub async fn rejoin(&self) -> StoreResult<()> {
        let old = self.node_id();
        if let Err(error) = self.directory.expire(&old).await {
            debug!(node_id = %old, error = %error, "could not expire the old node id; it lapses with its TTL");
        }
        *self.id.write().unwrap_or_else(|e| e.into_inner()) = NodeId::generate();
        info!(old_node_id = %old, node_id = %self.node_id(), "node rejoining under a fresh id");
        self.register().await
    }

    /// Removes this node from the directory as it stops.
    pub async fn leave(&self) -> StoreResult<()> {
        let id = self.node_id();
        self.directory.expire(&id).await?;
        let forgotten = self.directory.forget(&id).await?;
        info!(node_id = %id, forgotten, "node left the cluster");
        Ok(())
    }

    /// Reads the directory again.
    pub async fn refresh(&self) -> StoreResult<()> {
        let nodes = self.directory.nodes().await?;
        let mut view = View::default();
        for node in nodes {
            match node {
                NodeStatus::Live(info) => {
                    view.live.insert(info.id.clone(), info);
                }
                NodeStatus::Dead(id) => {
                    view.dead.insert(id);
                }
            }
        }
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = view;
        Ok(())
    }

    /// Dead nodes as last read, other than this one.
    pub fn dead_nodes(&self) -> Vec<NodeId> {
        let me = self.node_id();
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        view.dead.iter().filter(|id| **id != me).cloned().collect()
    }

    /// Returns the internal address of a live node, reading the directory
    /// again if the node is not known yet.
    pub async fn address_of(&self, node: &NodeId) -> Option<String> {
        if let Some(address) = self.live_address(node) {
            return Some(address);
        }
        if let Err(error) = self.refresh().await {
            debug!(node_id = %node, error = %error, "could not read the node directory");
        }
        self.live_address(node)
    }

    fn live_address(&self, node: &NodeId) -> Option<String> {
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        view.live.get(node).map(|info| info.address.clone())
    }

    /// Chooses the node for a new room: the live, non-draining node with
    /// the fewest rooms. This node keeps the room when it is close enough
    /// to that minimum, which saves a hop.
    pub fn place(&self) -> Placement {
        self.place_excluding(&[])
    }

    /// Like [`ClusterNode::place`], but never on the nodes in `excluded`.
    pub fn place_excluding(&self, excluded: &[NodeId]) -> Placement {
        let me = self.node_id();
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        let candidates = view
            .live
            .values()
            .filter(|info| !info.draining && info.id != me && !excluded.contains(&info.id));
        let Some(least) = candidates.min_by_key(|info| (info.rooms, info.id.clone())) else {
            return Placement::Here;
        };
        let here = self.info();
        let slack = PLACEMENT_SLACK_ROOMS.max(least.rooms / PLACEMENT_SLACK_SHARE);
        if !here.draining && !excluded.contains(&me) && here.rooms <= least.rooms + slack {
            Placement::Here
        } else {
            Placement::Elsewhere(least.clone())
        }
    }

    fn is_known_dead(&self, node: &NodeId) -> bool {
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        view.dead.contains(node)
    }

    fn mark_renewed(&self, sent_at: Instant) {
        *self.renewed_at.lock().unwrap_or_else(|e| e.into_inner()) = sent_at;
    }
}

#[async_trait]
impl Membership for ClusterNode {
    fn node_id(&self) -> NodeId {
        self.id.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn serving(&self) -> bool {
        let renewed_at = *self.renewed_at.lock().unwrap_or_else(|e| e.into_inner());
        renewed_at.elapsed() < self.config.node_ttl
    }

    fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    async fn is_alive(&self, node: &NodeId) -> bool {
        if *node == self.node_id() {
            return true;
        }
        if self.live_address(node).is_some() {
            return true;
        }
        if self.is_known_dead(node) {
            // A node id that was dead never comes back.
            return false;
        }
        // A node that registered after the last look may be missing from
        // the view; only a fresh read may call it dead.
        match self.refresh().await {
            Ok(()) => self.live_address(node).is_some(),
            // Without the directory, assume it lives: claiming a live
            // node's room would fence it for nothing.
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use roomd_store::MemoryStore;

    use super::*;

    const TTL: Duration = Duration::from_secs(5);

    async fn joined(directory: &Arc<MemoryStore>, address: &str) -> Arc<ClusterNode> {
        let config = ClusterConfig {
            node_ttl: TTL,
            advertise_address: address.to_owned(),
        };
        ClusterNode::join(directory.clone(), config).await.unwrap()
    }

    async fn publish(node: &ClusterNode, rooms: usize) {
        node.set_room_count(rooms);
        assert!(node.renew().await.unwrap());
    }

    #[tokio::test]
    async fn new_room_stays_here_within_the_slack() {
        let directory = Arc::new(MemoryStore::new());
        let here = joined(&directory, "127.0.0.1:1").await;
        let other = joined(&directory, "127.0.0.1:2").await;
        publish(&here, 110).await;
        publish(&other, 100).await;
        here.refresh().await.unwrap();

        assert_eq!(here.place(), Placement::Here);
    }

    #[tokio::test]
    async fn new_room_goes_to_the_least_loaded_node() {
        let directory = Arc::new(MemoryStore::new());
        let here = joined(&directory, "127.0.0.1:1").await;
        let busy = joined(&directory, "127.0.0.1:2").await;
        let idle = joined(&directory, "127.0.0.1:3").await;
        publish(&here, 500).await;
        publish(&busy, 400).await;
        publish(&idle, 10).await;
        here.refresh().await.unwrap();

        let Placement::Elsewhere(target) = here.place() else {
            panic!("a node 490 rooms above the minimum must place elsewhere");
        };
        assert_eq!(target.address, "127.0.0.1:3");
    }

    #[tokio::test]
    async fn draining_nodes_take_no_rooms() {
        let directory = Arc::new(MemoryStore::new());
        let here = joined(&directory, "127.0.0.1:1").await;
        let other = joined(&directory, "127.0.0.1:2").await;
        publish(&other, 0).await;
        here.start_draining();
        publish(&here, 0).await;
        here.refresh().await.unwrap();

        let Placement::Elsewhere(target) = here.place() else {
            panic!("a draining node must not keep a new room");
        };
        assert_eq!(target.id, other.node_id());

        other.start_draining();
        publish(&other, 0).await;
        here.refresh().await.unwrap();
        assert_eq!(here.place(), Placement::Here, "with no other choice, here");
    }

    #[tokio::test]
    async fn unknown_node_is_looked_up_before_it_counts_as_dead() {
        let directory = Arc::new(MemoryStore::new());
        let here = joined(&directory, "127.0.0.1:1").await;
        let late = joined(&directory, "127.0.0.1:2").await;

        // `here` read the directory before `late` joined.
        assert!(here.is_alive(&late.node_id()).await);
        assert_eq!(
            here.address_of(&late.node_id()).await.as_deref(),
            Some("127.0.0.1:2")
        );
        assert!(!here.is_alive(&NodeId::generate()).await);
    }

    #[tokio::test]
    async fn rejoin_takes_a_fresh_id_and_drops_the_old_one() {
        let directory = Arc::new(MemoryStore::new());
        let node = joined(&directory, "127.0.0.1:1").await;
        let old = node.node_id();

        node.rejoin().await.unwrap();

        assert_ne!(node.node_id(), old);
        assert!(node.serving());
        let other = joined(&directory, "127.0.0.1:2").await;
        assert!(!other.is_alive(&old).await);
        assert!(other.is_alive(&node.node_id()).await);
    }
}
