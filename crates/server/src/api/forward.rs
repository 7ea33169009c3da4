//! Forwarding of requests for rooms that another node owns.
//!
//! A node first tries a request itself. When that fails with
//! [`RoomError::NotOwner`], the request goes to the owner's internal port
//! with the caller this node resolved (see [`crate::auth`]) and, when
//! configured, the node token. The owner's reply (room or fault) goes back
//! to the client unchanged. The internal port serves requests itself
//! and never forwards them again, so a request makes at most one hop.
//!
//! An owner that just handed the room off replies with a retryable
//! `UNAVAILABLE`, and one that died cannot be reached at all. Either way
//! the node locates the room again after a short backoff and tries once
//! more.

use std::sync::Arc;
use std::time::Duration;

use roomd_actors::Membership;
use roomd_cluster::{Cluster, Placement};
use roomd_model::RoomError;
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_store::NodeId;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use tracing::debug;

use crate::auth::AUTHORIZATION_HEADER;
use crate::auth::tokens::Secret;
use crate::caller::Caller;
use crate::fault;

/// Metadata naming the node that forwarded a request, for the owner's logs.
pub const FORWARDED_BY_HEADER: &str = "x-roomd-forwarded-by";

/// Tries of one request, locally and at the owner, before its last fault
/// goes back to the client.
pub(super) const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Clone)]
pub struct Forwarder {
    cluster: Arc<Cluster>,
    /// `Bearer <node token>`, sent with every forwarded request.
    node_authorization: Option<MetadataValue<Ascii>>,
}

impl Forwarder {
    /// Builds the forwarder of a clustered node, which presents
    /// `node_token` to the other nodes when one is configured.
    pub fn new(cluster: Arc<Cluster>, node_token: Option<&Secret>) -> Self {
        let node_authorization = node_token.and_then(|token| {
            let text = String::from_utf8_lossy(token.expose());
            MetadataValue::try_from(format!("Bearer {text}")).ok()
        });
        Forwarder {
            cluster,
            node_authorization,
        }
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

    /// Returns the node a new room should go to, and a client for it, or
    /// `None` when this node should take it. Nodes in `failed` already
    /// failed to take this room.
    pub(super) fn placement(&self, failed: &[NodeId]) -> Option<(NodeId, RoomsClient<Channel>)> {
        match self.cluster.node().place_excluding(failed) {
            Placement::Here => None,
            Placement::Elsewhere(info) => Some((info.id, self.client(&info.address)?)),
        }
    }

    /// Reads the node directory again after a peer could not be reached,
    /// so that the next try treats a node whose heartbeat expired as dead
    /// and claims its room instead of forwarding there again.
    pub(super) async fn peer_unreachable(&self, status: &Status) {
        if is_roomd_fault(status) {
            return;
        }
        if let Err(error) = self.cluster.node().refresh().await {
            debug!(error = %error, "could not read the node directory");
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

    /// Builds the request the owner receives: the same message, the
    /// resolved caller as metadata, and the node token. The caller's own
    /// credential stays here, since the owner trusts this node instead.
    pub(super) fn request<T>(&self, caller: &Caller, message: T) -> Result<Request<T>, Status> {
        let mut request = Request::new(message);
        let forwarded = request.metadata_mut();
        caller.write_metadata(forwarded).map_err(fault::status)?;
        if let Some(authorization) = &self.node_authorization {
            forwarded.insert(AUTHORIZATION_HEADER, authorization.clone());
        }
        if let Ok(node) = self.cluster.node().node_id().as_str().parse() {
            forwarded.insert(FORWARDED_BY_HEADER, node);
        }
        Ok(request)
    }
}

/// Tells whether a forwarded request failed because the room moved or the
/// node went away, so that locating the room again may help: a retryable
/// roomd fault, or any failure that did not come from a roomd handler (a
/// connection refused, reset or closed while the peer stopped).
pub(super) fn may_retry_elsewhere(status: &Status) -> bool {
    status.code() == Code::Unavailable || !is_roomd_fault(status)
}

/// Tells whether a status is a fault that a roomd node returned, rather
/// than a transport failure on the way to it.
pub(super) fn is_roomd_fault(status: &Status) -> bool {
    status
        .get_error_details()
        .error_info()
        .is_some_and(|info| info.domain == fault::DOMAIN)
}

/// Returns the status to give the client after the last try: the peer's
/// own fault, or, for a transport failure, a retryable `unavailable.owner`
/// fault that names the room.
pub(super) fn give_up(room_id: &str, status: Status) -> Status {
    if is_roomd_fault(&status) {
        return status;
    }
    fault::status(RoomError::OwnerUnavailable {
        room_id: room_id.to_owned(),
        message: format!("forwarding to its node failed: {}", status.message()),
    })
}

/// Waits before the `attempt`-th try (counted from 1).
pub(super) async fn back_off(attempt: u32) {
    let delay = FIRST_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(6));
    tokio::time::sleep(delay).await;
}
