//! Running roomd on many nodes that share one store.
//!
//! - [`node`]: [`ClusterNode`], this node's id, heartbeat state and view of
//!   the others; it is the [`roomd_actors::Membership`] the registry consults
//!   before it claims a room, and it places new rooms by load.
//! - [`peers`]: pooled connections to the other nodes' internal API, over
//!   which requests for their rooms are forwarded.
//! - [`Cluster`]: the background work of a node: the heartbeat (with
//!   self-fencing when it cannot be renewed), adoption of the rooms of dead
//!   nodes and of released rooms, and the drain on shutdown.
//!
//! The store's traffic for liveness depends on the number of nodes only:
//! one renewal per heartbeat and one read of the directory per scan.

pub mod node;
pub mod peers;

use std::sync::Arc;

use futures::StreamExt;
use roomd_actors::{Membership, RoomService};
use roomd_store::NodeId;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

pub use node::{ClusterConfig, ClusterNode, Placement};
pub use peers::Peers;

/// Rooms asked for per round trip while adopting.
const ADOPTION_BATCH: usize = 64;
/// Rooms claimed at once while adopting.
const ADOPTION_CONCURRENCY: usize = 16;
/// Batches one scan adopts per dead node, so that one scan stays short and
/// other nodes get their share of the work.
const ADOPTION_BATCHES_PER_SCAN: usize = 8;

/// A node's part in the cluster: its membership, its connections to the
/// other nodes, and the tasks that keep both current.
pub struct Cluster {
    node: Arc<ClusterNode>,
    peers: Peers,
    service: RoomService,
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Cluster {
    /// Starts the heartbeat and the adoption scan of a node that already
    /// joined the directory and runs `service`.
    pub fn start(node: Arc<ClusterNode>, service: RoomService) -> Arc<Self> {
        Self::start_with_peers(node, service, Peers::default())
    }

    /// Like [`Cluster::start`], reaching the other nodes through `peers`.
    pub fn start_with_peers(
        node: Arc<ClusterNode>,
        service: RoomService,
        peers: Peers,
    ) -> Arc<Self> {
        let cluster = Arc::new(Cluster {
            node,
            peers,
            service,
            stop: watch::Sender::new(false),
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        let heartbeat = tokio::spawn(cluster.clone().heartbeat());
        let adoption = tokio::spawn(cluster.clone().adoption());
        cluster
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([heartbeat, adoption]);
        info!(
            node_id = %cluster.node.node_id(),
            node_ttl_ms = cluster.node.config().node_ttl.as_millis() as u64,
            "cluster membership started"
        );
        cluster
    }

    pub fn node(&self) -> &Arc<ClusterNode> {
        &self.node
    }

    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// Stops taking rooms and hands off every room this node runs, so that
    /// the other nodes adopt them. The node keeps serving requests, which
    /// it now forwards.
    pub async fn drain(&self) {
        self.node.start_draining();
        if let Err(error) = self.node.renew().await {
            warn!(error = %error, "could not announce the drain; other nodes see it with the next heartbeat");
        }
        let rooms = self.service.live_rooms();
        info!(node_id = %self.node.node_id(), rooms, "draining: handing rooms off");
        let handed_off = self.service.hand_off_rooms().await;
        info!(node_id = %self.node.node_id(), handed_off, "drain done");
    }

    /// Waits until every other node has read the directory at least once
    /// since the drain, so that none still places rooms here or forwards
    /// requests for the rooms handed off. The node keeps serving meanwhile.
    pub async fn settle(&self) {
        let delay = self.node.config().scan_interval() * 2;
        debug!(
            delay_ms = delay.as_millis() as u64,
            "waiting for the other nodes to see the drain"
        );
        tokio::time::sleep(delay).await;
    }

    /// Stops the background tasks and removes the node from the directory.
    pub async fn leave(&self) {
        self.stop.send_replace(true);
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        if let Err(error) = self.node.leave().await {
            warn!(error = %error, "could not leave the node directory; the node expires with its TTL");
        }
    }

    /// Renews the heartbeat every interval. A node that cannot renew within
    /// the TTL, or finds that it was declared dead, stops its rooms (others
    /// adopt them) and rejoins under a fresh id.
    async fn heartbeat(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        let interval = self.node.config().heartbeat_interval();
        let mut fenced = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            self.node.set_room_count(self.service.live_rooms());

            match self.node.renew().await {
                Ok(true) => continue,
                Ok(false) => {
                    warn!(node_id = %self.node.node_id(), "the directory declared this node dead");
                }
                Err(error) if self.node.serving() => {
                    warn!(node_id = %self.node.node_id(), error = %error, "heartbeat failed; retrying");
                    continue;
                }
                Err(error) => {
                    error!(node_id = %self.node.node_id(), error = %error, "heartbeat not renewed within the node TTL");
                }
            }

            if !fenced {
                self.fence();
                fenced = true;
            }
            match self.node.rejoin().await {
                Ok(()) => fenced = false,
                Err(error) => warn!(error = %error, "rejoining the cluster failed; retrying"),
            }
        }
    }

    /// Stops every room actor of this node without writing to the store.
    fn fence(&self) {
        let rooms = self.service.fence_rooms();
        metrics::counter!("roomd_node_fenced_total").increment(1);
        warn!(node_id = %self.node.node_id(), rooms, "node fenced itself: its rooms stop here and are adopted elsewhere");
    }

    /// Looks for dead nodes and released rooms, and adopts their rooms.
    async fn adoption(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        let interval = self.node.config().scan_interval();
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            if let Err(error) = self.node.refresh().await {
                debug!(error = %error, "could not read the node directory; scanning later");
                continue;
            }
            if self.node.draining() || !self.node.serving() {
                continue;
            }
            for dead in self.node.dead_nodes() {
                self.adopt_rooms_of(Some(&dead)).await;
            }
            self.adopt_rooms_of(None).await;
            self.start_overdue_rooms().await;
        }
    }

    /// Starts the actors of this node's rooms whose timers are overdue by
    /// more than a node TTL but that no actor runs (their restart budget
    /// ran out, say), and adopts such rooms of dead owners. Rooms that
    /// another live node owns are left to that node's own sweep.
    async fn start_overdue_rooms(&self) {
        let grace = chrono::Duration::from_std(self.node.config().node_ttl)
            .unwrap_or(chrono::Duration::MAX);
        let before = chrono::Utc::now() - grace;
        let rooms = match self
            .node
            .directory()
            .overdue_rooms(before, ADOPTION_BATCH)
            .await
        {
            Ok(rooms) => rooms,
            Err(error) => {
                debug!(error = %error, "could not list rooms with overdue timers");
                return;
            }
        };
        for room_id in rooms {
            if self.service.runs(room_id) {
                continue;
            }
            match self.service.adopt(room_id).await {
                Ok(true) => warn!(%room_id, "room with an overdue timer had no actor; started it"),
                Ok(false) => {}
                Err(fault) => {
                    warn!(%room_id, error = %fault, "starting a room with an overdue timer failed")
                }
            }
        }
    }

    /// Adopts rooms of a dead node, or, with `None`, released rooms. A dead
    /// node that owns no room any more leaves the directory.
    async fn adopt_rooms_of(&self, node: Option<&NodeId>) {
        let directory = self.node.directory();
        for _ in 0..ADOPTION_BATCHES_PER_SCAN {
            let rooms = match directory.owned_rooms(node, ADOPTION_BATCH).await {
                Ok(rooms) => rooms,
                Err(error) => {
                    debug!(error = %error, "could not list rooms to adopt");
                    return;
                }
            };
            if rooms.is_empty() {
                break;
            }
            let adopted = futures::stream::iter(rooms)
                .map(|room_id| async move {
                    match self.service.adopt(room_id).await {
                        Ok(adopted) => adopted,
                        Err(fault) => {
                            warn!(%room_id, error = %fault, "adopting a room failed");
                            false
                        }
                    }
                })
                .buffer_unordered(ADOPTION_CONCURRENCY)
                .filter(|adopted| std::future::ready(*adopted))
                .count()
                .await;
            let from = node.map_or("released".to_owned(), ToString::to_string);
            info!(from, adopted, node_id = %self.node.node_id(), "rooms adopted");
            if adopted == 0 {
                // Every room of the batch went elsewhere or could not be
                // claimed; look again at the next scan.
                break;
            }
        }
        if let Some(dead) = node {
            match directory.forget(dead).await {
                Ok(true) => info!(node_id = %dead, "dead node left the directory"),
                Ok(false) => {}
                Err(error) => {
                    debug!(node_id = %dead, error = %error, "could not forget a dead node")
                }
            }
        }
    }
}
