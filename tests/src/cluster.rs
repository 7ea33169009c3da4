//! [`Cluster`]: several real `roomd` processes that share one
//! [`RedisServer`], for tests of clustering, failover and draining.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::Duration;

use roomd_proto::v1::rooms_client::RoomsClient;
use tonic::transport::Channel;

use crate::{RedisServer, RoomdProcess, eventually};

/// Heartbeat TTL that test clusters pass as `--node-ttl` unless the builder
/// sets another, short so that failover tests finish quickly.
pub const TEST_NODE_TTL_SECS: u64 = 2;
/// `--rate-limit` and `--rate-burst` of test clusters, far above any test's
/// request rate.
const UNLIMITED_RATE: &str = "1000000";
/// How long [`Cluster::wait_ready`] waits for every node to report serving.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Settings of a [`Cluster`] to start, created by [`Cluster::builder`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    nodes: usize,
    node_ttl_secs: u64,
    extra_args: Vec<String>,
}

impl ClusterBuilder {
    /// Sets how many nodes the cluster starts with (default 3).
    pub fn nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes;
        self
    }

    /// Sets `--node-ttl` in seconds (default [`TEST_NODE_TTL_SECS`]).
    pub fn node_ttl(mut self, seconds: u64) -> Self {
        self.node_ttl_secs = seconds;
        self
    }

    /// Adds flags that every node gets, such as `["--unused-timeout", "2"]`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.extra_args
            .extend(args.iter().map(|&arg| arg.to_owned()));
        self
    }

    /// Starts a Redis server, then the nodes one after another, each
    /// waiting until its health check reports serving.
    ///
    /// # Panics
    /// When Redis or a node fails to start. The message contains the
    /// node's log. Processes started before the failure are killed.
    pub async fn start(self) -> Cluster {
        let redis = RedisServer::spawn().await;
        let mut node_args = vec![
            "--redis-url".to_owned(),
            redis.url(),
            "--node-ttl".to_owned(),
            self.node_ttl_secs.to_string(),
        ];
        // Cluster tests send one caller's requests far faster than the
        // default rate limit allows. They test clustering, so the limit is
        // lifted unless the test sets its own.
        if !self.extra_args.iter().any(|arg| arg == "--rate-limit") {
            node_args.extend(
                [
                    "--rate-limit",
                    UNLIMITED_RATE,
                    "--rate-burst",
                    UNLIMITED_RATE,
                ]
                .map(String::from),
            );
        }
        node_args.extend(self.extra_args);

        let mut cluster = Cluster {
            nodes: Vec::with_capacity(self.nodes),
            node_args,
            redis,
        };
        for _ in 0..self.nodes {
            cluster.add_node().await;
        }
        cluster
    }
}

/// `roomd` processes on free loopback ports that share one
/// [`RedisServer`]. Dropping the cluster kills every node and then the
/// Redis server.
#[derive(Debug)]
pub struct Cluster {
    // Nodes come before `redis` so that they are dropped, and killed, first.
    nodes: Vec<ClusterNode>,
    /// Flags that every node gets after its addresses: `--redis-url`,
    /// `--node-ttl` and the builder's extra flags.
    node_args: Vec<String>,
    redis: RedisServer,
}

impl Cluster {
    /// Returns a builder for a cluster of 3 nodes with `--node-ttl 2`.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            nodes: 3,
            node_ttl_secs: TEST_NODE_TTL_SECS,
            extra_args: Vec::new(),
        }
    }

    /// Starts a cluster of `nodes` nodes with the builder's defaults.
    pub async fn start(nodes: usize) -> Self {
        Self::builder().nodes(nodes).start().await
    }

    /// Starts one more node with the cluster's flags and returns its index.
    pub async fn add_node(&mut self) -> usize {
        let process = RoomdProcess::spawn_clustered(&self.node_args).await;
        self.nodes.push(ClusterNode {
            args: self.node_args.clone(),
            process,
            earlier_logs: String::new(),
        });
        self.nodes.len() - 1
    }

    /// Returns node `index`.
    ///
    /// # Panics
    /// When there is no such node.
    pub fn node(&self, index: usize) -> &ClusterNode {
        self.nodes
            .get(index)
            .unwrap_or_else(|| panic!("no node {index}; the cluster has {}", self.nodes.len()))
    }

    /// Returns node `index` for signals and restarts.
    ///
    /// # Panics
    /// When there is no such node.
    pub fn node_mut(&mut self, index: usize) -> &mut ClusterNode {
        let count = self.nodes.len();
        self.nodes
            .get_mut(index)
            .unwrap_or_else(|| panic!("no node {index}; the cluster has {count}"))
    }

    /// Returns all nodes in start order.
    pub fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    /// Returns how many nodes the cluster has, running or not.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Tells whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Returns the Redis server that the nodes share.
    pub fn redis(&self) -> &RedisServer {
        &self.redis
    }

    /// Returns the Redis server for restarts and kills.
    pub fn redis_mut(&mut self) -> &mut RedisServer {
        &mut self.redis
    }

    /// Waits until every node's health check reports the rooms service
    /// serving.
    ///
    /// # Panics
    /// When a node still does not report serving after 20 s. The message
    /// names the nodes and contains all logs.
    pub async fn wait_ready(&self) {
        eventually(READY_TIMEOUT, Duration::from_millis(100), async || {
            let mut not_serving = Vec::new();
            for (index, node) in self.nodes.iter().enumerate() {
                if !node.is_serving().await {
                    not_serving.push(format!("node {index} ({})", node.address()));
                }
            }
            if not_serving.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "not serving: {}\n{}",
                    not_serving.join(", "),
                    self.logs()
                ))
            }
        })
        .await;
    }

    /// Returns the logs of all nodes, each under a header line, for
    /// assertion messages.
    pub fn logs(&self) -> String {
        let mut logs = String::new();
        for (index, node) in self.nodes.iter().enumerate() {
            logs.push_str(&format!("===== node {index} =====\n{}\n", node.log()));
        }
        logs
    }
}

/// One `roomd` process of a [`Cluster`], which can be signalled and
/// restarted.
#[derive(Debug)]
pub struct ClusterNode {
    /// The flags after the address flags, kept for restarts.
    args: Vec<String>,
    process: RoomdProcess,
    /// Logs of the processes this node ran before the current one.
    earlier_logs: String,
}

impl ClusterNode {
    /// Returns the current process's public gRPC address. A restart picks
    /// new ports.
    pub fn address(&self) -> SocketAddr {
        self.process.address
    }

    /// Returns the current process's internal (node-to-node) gRPC address,
    /// which is also its advertised address.
    pub fn internal_address(&self) -> SocketAddr {
        self.process.internal_address
    }

    /// Returns the URL that clients connect to, such as
    /// `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.process.url()
    }

    /// Connects a `Rooms` client to the node's public address.
    pub async fn rooms_client(&self) -> RoomsClient<Channel> {
        self.process.rooms_client().await
    }

    /// Returns the current process's id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Tells whether the node's health check reports the rooms service
    /// serving within 2 s.
    pub async fn is_serving(&self) -> bool {
        self.process.is_serving().await
    }

    /// Returns the exit status if the current process has exited, without
    /// waiting.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.process.exit_status()
    }

    /// Kills the process with SIGKILL and returns its exit status.
    pub async fn sigkill(&mut self) -> ExitStatus {
        self.process.sigkill().await
    }

    /// Pauses the process with SIGSTOP.
    pub fn sigstop(&mut self) {
        self.process.sigstop();
    }

    /// Resumes the process after [`ClusterNode::sigstop`].
    pub fn sigcont(&mut self) {
        self.process.sigcont();
    }

    /// Sends SIGTERM, which makes the node drain, without waiting.
    pub fn sigterm(&mut self) {
        self.process.sigterm();
    }

    /// Waits up to `timeout` for the process to exit and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.process.wait_exit(timeout).await
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit.
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.process.terminate(timeout).await
    }

    /// Starts a new process with the node's flags on new ports and waits
    /// until it reports serving. A process that still runs, even paused, is
    /// killed with SIGKILL first, so the old and new process never run
    /// together.
    pub async fn restart(&mut self) {
        if self.process.exit_status().is_none() {
            self.process.sigkill().await;
        }
        let process = RoomdProcess::spawn_clustered(&self.args).await;
        let old = std::mem::replace(&mut self.process, process);
        self.earlier_logs.push_str(&format!(
            "----- roomd pid {} -----\n{}\n",
            old.pid(),
            old.log()
        ));
    }

    /// Returns what the node's processes have logged: those before the last
    /// restart first, each under a header line with its process id.
    pub fn log(&self) -> String {
        format!(
            "{}----- roomd pid {} -----\n{}",
            self.earlier_logs,
            self.pid(),
            self.process.log()
        )
    }
}
