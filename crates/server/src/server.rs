//! Starting a node and serving the API until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use roomd_actors::{Membership, RoomService, SingleNode, SystemClock};
use roomd_cluster::{Cluster, ClusterConfig, ClusterNode, Peers};
use roomd_model::RoomError;
use roomd_proto::v1::chaos_server::ChaosServer;
use roomd_proto::v1::definitions_server::DefinitionsServer;
use roomd_proto::v1::rooms_server::RoomsServer;
use roomd_store::{MemoryStore, NodeDirectory, Store, StoreError};
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::service::Interceptor;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::{Router, TcpIncoming};
use tower::Layer;
use tower::util::MapResponseLayer;
use tracing::{info, warn};

use crate::api::{ChaosApi, DefinitionsApi, Forwarder, RoomsApi};
use crate::auth::tls::TlsSettings;
use crate::auth::{AuthInterceptor, Port};
use crate::config::ServerConfig;
use crate::fault;
use crate::limits::{self, RateInterceptor, RequestRate};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "refusing to serve the {port} port on {address} without authentication: listen on a loopback address, configure {credentials}, or pass --insecure-no-auth to trust every caller that can reach it"
    )]
    UnauthenticatedAddress {
        port: &'static str,
        address: SocketAddr,
        credentials: &'static str,
    },

    #[error("node failed to start: {0}")]
    Start(#[from] RoomError),

    #[error("cannot join the cluster: {0}")]
    Join(#[from] StoreError),

    #[error("reflection service failed to build: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),

    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),

    #[error("cannot read the listening address: {0}")]
    Io(#[from] std::io::Error),

    #[error("the room registry kept failing; the node stopped")]
    RegistryFailed,
}

/// A started roomd node: its room registry runs, and [`RoomdServer::serve`]
/// exposes it over gRPC.
pub struct RoomdServer {
    service: RoomService,
    config: ServerConfig,
    /// Set when the node is part of a cluster, with the listener of its
    /// internal API.
    cluster: Option<(Arc<Cluster>, TcpListener)>,
}

impl RoomdServer {
    /// Starts a node on the in-memory store.
    pub async fn start_in_memory(config: ServerConfig) -> Result<Self, ServerError> {
        warn!(
            "using the in-memory store: rooms live only in this process and are lost when it stops"
        );
        Self::start(config, Arc::new(MemoryStore::new())).await
    }

    /// Starts a node that runs alone on `store`.
    pub async fn start(config: ServerConfig, store: Arc<dyn Store>) -> Result<Self, ServerError> {
        let membership: Arc<dyn Membership> = Arc::new(SingleNode::new());
        let service = RoomService::start(
            store,
            Arc::new(SystemClock),
            membership,
            config.service.clone(),
        )
        .await?;
        Ok(RoomdServer {
            service,
            config,
            cluster: None,
        })
    }

    /// Starts a node that joins the cluster of every node sharing `store`,
    /// and serves other nodes on `internal`.
    pub async fn start_clustered<S>(
        config: ServerConfig,
        store: Arc<S>,
        cluster_config: ClusterConfig,
        internal: TcpListener,
    ) -> Result<Self, ServerError>
    where
        S: Store + NodeDirectory,
    {
        config.check_internal_address(internal.local_addr()?)?;
        let node = ClusterNode::join(store.clone(), cluster_config).await?;
        let service = RoomService::start(
            store,
            Arc::new(SystemClock),
            node.clone(),
            config.service.clone(),
        )
        .await?;
        let peers = match &config.peer_tls {
            Some(tls) => Peers::with_tls(tls.clone()),
            None => Peers::default(),
        };
        let cluster = Cluster::start_with_peers(node, service.clone(), peers);
        Ok(RoomdServer {
            service,
            config,
            cluster: Some((cluster, internal)),
        })
    }

    /// Returns the node's room operations, for embedding and tests.
    pub fn service(&self) -> &RoomService {
        &self.service
    }

    /// Serves the API on `listener` (and, in a cluster, the internal API)
    /// until `shutdown` completes. Then a clustered node hands its rooms
    /// off; every node stops taking requests, lets running ones finish, and
    /// stops its room actors.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let address = listener.local_addr()?;
        self.config.check_public_address(address)?;
        let authenticator = self.config.authenticator.clone();
        if !address.ip().is_loopback() {
            if !authenticator.authenticates_callers() {
                warn!(%address, "serving a non-loopback address without authentication; every caller is trusted");
            } else if self.config.tls.is_none() {
                warn!(%address, "serving a non-loopback address without TLS, so bearer tokens cross the network in clear text");
            }
        }

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<RoomsServer<RoomsApi>>().await;
        health
            .set_serving::<DefinitionsServer<DefinitionsApi>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(roomd_proto::FILE_DESCRIPTOR_SET)
            .build_v1()?;

        let (cluster, internal) = match self.cluster {
            Some((cluster, internal)) => (Some(cluster), Some(internal)),
            None => (None, None),
        };
        let rooms = match &cluster {
            Some(cluster) => {
                let forwarder = Forwarder::new(cluster.clone(), authenticator.node_token());
                RoomsApi::forwarding(self.service.clone(), forwarder)
            }
            None => RoomsApi::new(self.service.clone()),
        };
        let node_id = self.service.membership().node_id();
        info!(
            %address,
            %node_id,
            store = self.service.store().kind(),
            tls = self.config.tls.is_some(),
            authenticated = authenticator.authenticates_callers(),
            "roomd listening"
        );
        let chaos = self.config.enable_chaos.then(|| {
            warn!(%address, %node_id, "CHAOS SERVICE ENABLED: any trusted caller can kill this node's actors; never run this in production");
            ChaosServer::with_interceptor(
                ChaosApi::new(self.service.clone()),
                AuthInterceptor::new(authenticator.clone(), Port::Public),
            )
        });

        // A registry that keeps failing leaves nothing to serve: stop the
        // node as if asked to, and report it.
        let registry_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let shutdown = {
            let service = self.service.clone();
            let registry_failed = registry_failed.clone();
            async move {
                tokio::select! {
                    () = shutdown => {}
                    () = service.failed() => {
                        registry_failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        };

        let (stopping, stopping_seen) = tokio::sync::watch::channel(false);
        let service = self.service.clone();
        let draining = cluster.clone();
        let public_stop = stopping_seen.clone();
        let limits = &self.config.service.limits;
        let max_request_bytes = limits.max_request_bytes;
        let rate = RequestRate::new(limits);
        let forget_idle_callers = tokio::spawn(forget_idle_callers(rate.clone()));
        let public_auth = AuthInterceptor::new(authenticator.clone(), Port::Public);
        // Each request is authenticated first, then counted against the
        // caller's rate.
        let router = Server::builder()
            .layer(MapResponseLayer::new(fault::codec_faults(
                max_request_bytes,
            )))
            .add_service(health_service.clone())
            .add_service(reflection)
            .add_service(InterceptedService::new(
                RoomsServer::new(rooms).max_decoding_message_size(max_request_bytes),
                Chained(public_auth.clone(), RateInterceptor::new(rate.clone())),
            ))
            .add_service(InterceptedService::new(
                DefinitionsServer::new(DefinitionsApi::new(self.service.clone()))
                    .max_decoding_message_size(max_request_bytes),
                Chained(public_auth, RateInterceptor::new(rate)),
            ))
            .add_optional_service(chaos);
        let tls = self.config.tls.clone();
        let public = serve_router(router, listener, tls.clone(), async move {
            shutdown.await;
            if let Some(cluster) = draining {
                cluster.drain().await;
                health.set_not_serving::<RoomsServer<RoomsApi>>().await;
                cluster.settle().await;
            }
            info!("shutdown requested; finishing running requests");
            health.set_not_serving::<RoomsServer<RoomsApi>>().await;
            service.end_watches();
            let _ = stopping.send(true);
        });
        // Requests reach the internal port only after the public port of
        // another node counted them, so it applies no rate limit of its own.
        let internal = match internal {
            Some(listener) => {
                announce_internal(
                    &listener,
                    tls.is_some(),
                    authenticator.authenticates_nodes(),
                )?;
                let internal_auth = AuthInterceptor::new(authenticator.clone(), Port::Internal);
                let router = Server::builder()
                    .layer(MapResponseLayer::new(fault::codec_faults(
                        max_request_bytes,
                    )))
                    .add_service(health_service)
                    .add_service(InterceptedService::new(
                        RoomsServer::new(RoomsApi::new(self.service.clone()))
                            .max_decoding_message_size(max_request_bytes),
                        internal_auth,
                    ));
                let mut stopping = public_stop;
                Some(async move {
                    serve_router(router, listener, tls, async move {
                        let _ = stopping.wait_for(|stopping| *stopping).await;
                    })
                    .await
                    .map_err(ServerError::from)
                })
            }
            None => None,
        };

        let grace = self.config.shutdown_grace;
        let served = until_grace_ends(public, internal, stopping_seen, grace).await;
        forget_idle_callers.abort();

        self.service.shutdown().await;
        if let Some(cluster) = cluster {
            cluster.leave().await;
        }
        if registry_failed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ServerError::RegistryFailed);
        }
        info!("roomd stopped");
        served
    }
}

/// Runs the servers until they stop. Graceful shutdown waits for every
/// connection to close, so a client that keeps an idle connection open
/// would hold the node up forever; after the grace period the remaining
/// connections are dropped.
async fn until_grace_ends(
    public: impl Future<Output = Result<(), tonic::transport::Error>>,
    internal: Option<impl Future<Output = Result<(), ServerError>>>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    grace: std::time::Duration,
) -> Result<(), ServerError> {
    let servers = async {
        match internal {
            Some(internal) => {
                let (public, internal) = tokio::join!(public, internal);
                public.map_err(ServerError::from).and(internal)
            }
            None => public.await.map_err(ServerError::from),
        }
    };
    tokio::select! {
        served = servers => served,
        () = async {
            let _ = stopping.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        } => {
            warn!(grace_secs = grace.as_secs(), "connections still open after the shutdown grace period; closing them");
            Ok(())
        }
    }
}

/// Drops the rate state of idle callers now and then, until aborted.
async fn forget_idle_callers(rate: Arc<RequestRate>) {
    let mut interval = tokio::time::interval(limits::RATE_STATE_CLEANUP);
    loop {
        interval.tick().await;
        rate.forget_idle_callers();
    }
}

/// Logs the address of the internal API, which other nodes forward
/// requests to, and warns when anyone who reaches it is trusted.
fn announce_internal(
    listener: &TcpListener,
    tls: bool,
    authenticated: bool,
) -> Result<(), ServerError> {
    let address = listener.local_addr()?;
    if !address.ip().is_loopback() {
        if !authenticated {
            warn!(%address, "serving the internal API on a non-loopback address without the node token; every caller is trusted");
        } else if !tls {
            warn!(%address, "serving the internal API on a non-loopback address without TLS, so the node token crosses the network in clear text");
        }
    }
    info!(%address, tls, authenticated, "internal API listening");
    Ok(())
}

/// Serves `router` on `listener`, over TLS when `tls` is set, until
/// `shutdown` completes.
async fn serve_router<L>(
    router: Router<L>,
    listener: TcpListener,
    tls: Option<TlsSettings>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error>
where
    L: Layer<Routes>,
    L::Service:
        Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    <L::Service as Service<http::Request<Body>>>::Future: Send,
    <L::Service as Service<http::Request<Body>>>::Error: Into<tonic::codegen::StdError> + Send,
{
    // Server::tcp_nodelay applies only to addresses tonic binds itself,
    // so set it on the accepted sockets here. Without it, Nagle's
    // algorithm holds back the tail of a response until the client's
    // delayed ACK. JoinRoom p99 in roomd-bench fell from 49 ms to under
    // 10 ms once it was off.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    match tls {
        Some(tls) => {
            router
                .serve_with_incoming_shutdown(tls.incoming(incoming), shutdown)
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    }
}

/// Two interceptors run in order, so the second can read what the first
/// added to the request.
#[derive(Clone)]
struct Chained<A, B>(A, B);

impl<A: Interceptor, B: Interceptor> Interceptor for Chained<A, B> {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let request = self.0.call(request)?;
        self.1.call(request)
    }
}
