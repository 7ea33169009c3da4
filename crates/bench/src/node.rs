//! A roomd node running in this process: on the in-memory store, or as a
//! cluster node on Redis.

use std::sync::Arc;
use std::time::Duration;

use roomd_actors::RoomService;
use roomd_cluster::ClusterConfig;
use roomd_server::{RoomdServer, ServerConfig};
use roomd_store::{RedisConfig, RedisStore};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long the roomd node may take to stop its room actors at the end.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// A roomd node under test in this process, serving on a free port of
/// 127.0.0.1.
pub struct Node {
    pub address: String,
    pub service: RoomService,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), roomd_server::ServerError>>,
}

/// Returns the node configuration of a benchmark: the defaults, without a
/// request rate limit, because one benchmark account sends far more than
/// one caller's default rate and the benchmarks measure the node, not the
/// limiter.
fn bench_config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.service.limits.requests_per_second = u32::MAX;
    config.service.limits.request_burst = u32::MAX;
    config
}

impl Node {
    /// Starts a node alone on the in-memory store.
    pub async fn start_in_memory() -> Result<Self, String> {
        let server = RoomdServer::start_in_memory(bench_config())
            .await
            .map_err(|e| format!("cannot start the roomd node: {e}"))?;
        Self::serve(server).await
    }

    /// Starts a node on the Redis store at `redis_url` that joins the
    /// cluster of the nodes sharing it, as `roomd --redis-url` does. Its
    /// internal API listens on its own free port of 127.0.0.1.
    pub async fn start_clustered(redis_url: &str, node_ttl: Duration) -> Result<Self, String> {
        let internal = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1 for roomd's internal API: {e}"))?;
        let advertise_address = internal
            .local_addr()
            .map_err(|e| format!("cannot read roomd's internal address: {e}"))?
            .to_string();
        let store = RedisStore::connect(RedisConfig::new(redis_url))
            .await
            .map_err(|e| format!("cannot connect roomd to Redis: {e}"))?;
        let cluster = ClusterConfig {
            node_ttl,
            advertise_address,
        };
        let server =
            RoomdServer::start_clustered(bench_config(), Arc::new(store), cluster, internal)
                .await
                .map_err(|e| format!("cannot start the clustered roomd node: {e}"))?;
        Self::serve(server).await
    }

    async fn serve(server: RoomdServer) -> Result<Self, String> {
        let service = server.service().clone();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1 for roomd: {e}"))?;
        let address = listener
            .local_addr()
            .map_err(|e| format!("cannot read roomd's address: {e}"))?
            .to_string();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(Node {
            address,
            service,
            shutdown,
            task,
        })
    }

    /// Returns the node's id in the cluster.
    pub fn node_id(&self) -> String {
        self.service.membership().node_id().to_string()
    }

    /// Stops serving without a graceful shutdown. A clustered node would
    /// otherwise hand every room off first, with one Redis write per room,
    /// which changes nothing in the figures already taken.
    pub fn abandon(self) {
        self.task.abort();
    }

    /// Stops the node. A slow or failed stop is only reported on stderr,
    /// because the figures are already taken.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("roomd-bench: the roomd node failed while stopping: {e}"),
            Ok(Err(e)) => eprintln!("roomd-bench: the roomd node's task failed: {e}"),
            Err(_) => eprintln!(
                "roomd-bench: the roomd node did not stop within {} s",
                SHUTDOWN_TIMEOUT.as_secs()
            ),
        }
    }
}
