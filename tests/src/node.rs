//! [`TestNode`]: a roomd node served in this process on a free loopback
//! port, with clients connected to it.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use roomd_actors::RoomService;
use roomd_proto::v1::definitions_client::DefinitionsClient;
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::{CreateRoomRequest, Room};
use roomd_server::{RoomdServer, ServerConfig, ServerError};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use crate::Caller;

/// How long [`TestNode::shutdown`] waits for the server to finish running
/// requests before it reports a failure.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// A roomd node served in this process on `127.0.0.1` and a free port.
///
/// Dropping the node sends the server its shutdown signal, and the server
/// task then finishes on its own while the runtime lives. Call [`TestNode::shutdown`]
/// to wait for it and see its result.
pub struct TestNode {
    pub address: SocketAddr,
    /// The node's room operations; the same instance the gRPC API calls.
    pub service: RoomService,
    pub rooms: RoomsClient<Channel>,
    pub definitions: DefinitionsClient<Channel>,
    channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), ServerError>>>,
}

impl TestNode {
    /// Starts a node with the default configuration.
    pub async fn start() -> Self {
        Self::start_with(ServerConfig::default()).await
    }

    /// Starts a node on the in-memory store with `config`, serving on a
    /// free loopback port, and connects clients to it.
    pub async fn start_with(config: ServerConfig) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a free port on 127.0.0.1");
        let address = listener.local_addr().expect("read the bound address");

        let server = RoomdServer::start_in_memory(config)
            .await
            .expect("start the roomd node");
        let service = server.service().clone();
        let (shutdown, shutdown_requested) = oneshot::channel::<()>();
        let server = tokio::spawn(server.serve(listener, async {
            // A dropped sender also means shut down.
            let _ = shutdown_requested.await;
        }));

        let channel = connect(address).await;
        TestNode {
            address,
            service,
            rooms: RoomsClient::new(channel.clone()),
            definitions: DefinitionsClient::new(channel.clone()),
            channel,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    /// Creates a room as `caller` through the node's `Rooms` client and
    /// returns it.
    pub async fn create_room(&self, caller: &Caller, request: CreateRoomRequest) -> Room {
        crate::create_room(&mut self.rooms.clone(), caller, request).await
    }

    /// Returns a channel to the node, for clients of other services
    /// (health, reflection).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Asks the server to stop, then waits until it has finished running
    /// requests, ended open watch streams and stopped its room actors.
    /// Returns the server's result.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let server = self
            .server
            .take()
            .expect("the server task runs until shutdown");
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, server).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => panic!("roomd server task failed: {join_error}"),
            Err(_) => panic!("roomd server did not stop within {SHUTDOWN_TIMEOUT:?}"),
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Connects a channel to a roomd node on `address`.
pub async fn connect(address: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{address}"))
        .expect("a socket address makes a valid URI")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to roomd at {address}: {e}"))
}
