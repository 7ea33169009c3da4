//! Connections to the internal API of the other nodes, one multiplexed
//! HTTP/2 channel per node address, made on first use and reused; over TLS
//! when the nodes serve it.

use std::time::Duration;

use dashmap::DashMap;
use roomd_proto::v1::rooms_client::RoomsClient;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// How long a forwarded request may wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a forwarded request may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Peers {
    channels: DashMap<String, Channel>,
    /// Set when the other nodes serve their internal API over TLS.
    tls: Option<ClientTlsConfig>,
}

impl Peers {
    /// Connects to the other nodes over TLS, checking their certificates
    /// with the CA of `tls`.
    pub fn with_tls(tls: ClientTlsConfig) -> Self {
        Peers {
            channels: DashMap::new(),
            tls: Some(tls),
        }
    }

    /// Returns a client for the node at `address` (host:port).
    pub fn rooms(&self, address: &str) -> Result<RoomsClient<Channel>, tonic::transport::Error> {
        if let Some(channel) = self.channels.get(address) {
            return Ok(RoomsClient::new(channel.clone()));
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.clone())?;
        }
        let channel = endpoint
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
