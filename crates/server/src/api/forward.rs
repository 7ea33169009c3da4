//! Forwarding of requests for rooms that another node owns.
//!
//! A node first tries a request itself. When the registry answers
//! [`RoomError::NotOwner`], the request goes to the owner's internal port
//! with the caller's metadata, and the owner's answer (room or fault) goes
//! back to the client unchanged. The internal port serves requests itself
//! and never forwards them again, so a request makes at most one hop.
//!
//! An owner that just handed the room off, or died, answers with a
//! retryable `UNAVAILABLE`; the node then locates the room again, after a
//! short backoff, and tries once more.

use std::sync::Arc;
use std::time::Duration;

use roomd_actors::Membership;
use roomd_cluster::{Cluster, Placement};
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_store::NodeId;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tracing::debug;

use crate::caller::{ACCOUNT_HEADER, ORG_HEADER, ROLES_HEADER};

/// Metadata naming the node that forwarded a request, for the owner's logs.
pub const FORWARDED_BY_HEADER: &str = "x-roomd-forwarded-by";

/// Tries of one request, locally and at the owner, before its last fault
/// goes back to the client.
pub(super) const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct Forwarder {
    cluster: Arc<Cluster>,
}

impl Forwarder {
    pub fn new(cluster: Arc<Cluster>) -> Self {
        Forwarder { cluster }
    }

    /// Returns a client for the node a request for the room should go to:
    /// its live owner, or, for a room without one, a node that may claim
    /// it. `None` when there is no such node right now.
    pub(super) async fn owner(&self, owner: Option<&str>) -> Option<RoomsClient<Channel>> {
        let node = self.cluster.node();
        let address = match owner {
            Some(owner) => node.address_of(&NodeId::from_stored(owner)).await?,
            None => match node.place_excluding(&[node.node_id()]) {
                Placement::Elsewhere(info) => info.address,
                Placement::Here => return None,
            },
        };
        self.client(&address)
    }

    /// Returns a client for the node a new room should go to, or `None`
    /// when this node should take it.
    pub(super) fn placement(&self) -> Option<RoomsClient<Channel>> {
        match self.cluster.node().place() {
            Placement::Here => None,
            Placement::Elsewhere(info) => self.client(&info.address),
        }
    }

    fn client(&self, address: &str) -> Option<RoomsClient<Channel>> {
        match self.cluster.peers().rooms(address) {
            Ok(client) => Some(client),
            Err(error) => {
                debug!(address, error = %error, "cannot reach node");
                None
            }
        }
    }

    /// Builds the request the owner receives: the same message and the
    /// caller's metadata.
    pub(super) fn request<T>(&self, metadata: &MetadataMap, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let forwarded = request.metadata_mut();
        for header in [ORG_HEADER, ACCOUNT_HEADER, ROLES_HEADER] {
            if let Some(value) = metadata.get(header) {
                forwarded.insert(header, value.clone());
            }
        }
        if let Ok(node) = self.cluster.node().node_id().as_str().parse() {
            forwarded.insert(FORWARDED_BY_HEADER, node);
        }
        request
    }
}

/// Tells whether a fault from another node means that the room moved or
/// the node went away, so that locating the room again may help.
pub(super) fn may_retry_elsewhere(status: &Status) -> bool {
    status.code() == Code::Unavailable
}

/// Waits before the `attempt`-th try (counted from 1).
pub(super) async fn back_off(attempt: u32) {
    let delay = FIRST_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(6));
    tokio::time::sleep(delay).await;
}
