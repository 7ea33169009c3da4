//! Starting a node and serving the API until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use roomd_actors::{RoomService, SystemClock};
use roomd_model::RoomError;
use roomd_proto::v1::definitions_server::DefinitionsServer;
use roomd_proto::v1::rooms_server::RoomsServer;
use roomd_store::{MemoryStore, Store};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tracing::{info, warn};

use crate::api::{DefinitionsApi, RoomsApi};
use crate::config::ServerConfig;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "refusing to serve {0} without authentication: listen on a loopback address, or pass --insecure-no-auth to trust every caller that can reach it"
    )]
    UnauthenticatedAddress(SocketAddr),

    #[error("node failed to start: {0}")]
    Start(#[from] RoomError),

    #[error("reflection service failed to build: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),

    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),

    #[error("cannot read the listening address: {0}")]
    Io(#[from] std::io::Error),
}

/// A started roomd node: its room registry runs, and [`RoomdServer::serve`]
/// exposes it over gRPC.
pub struct RoomdServer {
    service: RoomService,
    config: ServerConfig,
}

impl RoomdServer {
    /// Starts a node on the in-memory store.
    pub async fn start_in_memory(config: ServerConfig) -> Result<Self, ServerError> {
        warn!(
            "using the in-memory store: rooms live only in this process and are lost when it stops"
        );
        Self::start(config, Arc::new(MemoryStore::new())).await
    }

    pub async fn start(config: ServerConfig, store: Arc<dyn Store>) -> Result<Self, ServerError> {
        let service =
            RoomService::start(store, Arc::new(SystemClock), config.service.clone()).await?;
        Ok(RoomdServer { service, config })
    }

    /// Returns the node's room operations, for embedding and tests.
    pub fn service(&self) -> &RoomService {
        &self.service
    }

    /// Serves the API on `listener` until `shutdown` completes, then stops
    /// taking requests, lets running ones finish, and stops the room actors.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let address = listener.local_addr()?;
        self.config.check_listen_address(address)?;
        if !address.ip().is_loopback() {
            warn!(%address, "serving a non-loopback address without authentication; every caller is trusted");
        }

        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<RoomsServer<RoomsApi>>().await;
        health
            .set_serving::<DefinitionsServer<DefinitionsApi>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(roomd_proto::FILE_DESCRIPTOR_SET)
            .build_v1()?;

        info!(%address, store = self.service.store().kind(), "roomd listening");
        let (stopping, mut stopping_seen) = tokio::sync::watch::channel(false);
        let service = self.service.clone();
        // Server::tcp_nodelay applies only to addresses tonic binds itself,
        // so set it on the accepted sockets here. Without it, Nagle's
        // algorithm holds back the tail of a response until the client's
        // delayed ACK. JoinRoom p99 in roomd-bench fell from 49 ms to under
        // 10 ms once it was off.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = Server::builder()
            .add_service(health_service)
            .add_service(reflection)
            .add_service(RoomsServer::new(RoomsApi::new(self.service.clone())))
            .add_service(DefinitionsServer::new(DefinitionsApi::new(
                self.service.clone(),
            )))
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                info!("shutdown requested; finishing running requests");
                health.set_not_serving::<RoomsServer<RoomsApi>>().await;
                service.end_watches();
                let _ = stopping.send(true);
            });

        // Graceful shutdown waits for every connection to close, so a client
        // that keeps an idle connection open would hold the node up forever.
        // After the grace period the remaining connections are dropped.
        let grace = self.config.shutdown_grace;
        let served = tokio::select! {
            served = server => served,
            () = async {
                let _ = stopping_seen.wait_for(|stopping| *stopping).await;
                tokio::time::sleep(grace).await;
            } => {
                warn!(grace_secs = grace.as_secs(), "connections still open after the shutdown grace period; closing them");
                Ok(())
            }
        };

        self.service.shutdown().await;
        info!("roomd stopped");
        served.map_err(ServerError::from)
    }
}
