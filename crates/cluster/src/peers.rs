//! Connections to the internal API of the other nodes, one multiplexed
//! HTTP/2 channel per node address, made on first use and reused.

use std::time::Duration;

use dashmap::DashMap;
use roomd_proto::v1::rooms_client::RoomsClient;
use tonic::transport::{Channel, Endpoint};

/// How long a forwarded request may wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a forwarded request may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Peers {
    channels: DashMap<String, Channel>,
}

impl Peers {
    /// Returns a client for the node at `address` (host:port).
    pub fn rooms(&self, address: &str) -> Result<RoomsClient<Channel>, tonic::transport::Error> {
        if let Some(channel) = self.channels.get(address) {
            return Ok(RoomsClient::new(channel.clone()));
        }
        let channel = Endpoint::from_shared(format!("http://{address}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        self.channels.insert(address.to_owned(), channel.clone());
        Ok(RoomsClient::new(channel))
    }

    /// Drops the connection to a node that went away.
    pub fn forget(&self, address: &str) {
        self.channels.remove(address);
    }
}
