//! Calls to the roomd API as the workload and the final read make them:
//! each with a deadline, each classified as ok, a roomd fault, or unknown.

use std::time::Duration;

use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::{ParticipantStatus, Room, RoomState};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::history::{Outcome, RoomSnapshot};

/// How long a request may take before its outcome counts as unknown.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects lazily, so a node that is down fails the request, not the
/// client.
pub fn rooms_client(address: std::net::SocketAddr) -> RoomsClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .expect("a socket address makes a valid URI")
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .connect_lazy();
    RoomsClient::new(channel)
}

/// Adds the org and the deadline to a request.
pub fn request<T>(org: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(REQUEST_TIMEOUT);
    if let Ok(org) = org.parse() {
        request.metadata_mut().insert("x-roomd-org", org);
    }
    request
}

/// Runs a call under the request deadline and classifies its outcome.
pub async fn outcome<T>(
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> (Outcome, Option<T>) {
    match tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(1), call).await {
        Ok(Ok(response)) => (Outcome::Ok, Some(response.into_inner())),
        Ok(Err(status)) => (classify(&status), None),
        Err(_) => (
            Outcome::Unknown {
                message: "no response within the deadline".into(),
            },
            None,
        ),
    }
}

/// Classifies a failed request. A status with roomd's `ErrorInfo` is a
/// fault roomd returned. Anything else came from the transport, and the
/// request may or may not have been applied.
pub fn classify(status: &Status) -> Outcome {
    match status.get_details_error_info() {
        Some(info) if info.domain == "roomd" && status.code() != Code::DeadlineExceeded => {
            Outcome::Fault {
                code: format!("{:?}", status.code()),
                reason: info.reason,
            }
        }
        _ => Outcome::Unknown {
            message: format!("{:?}: {}", status.code(), status.message()),
        },
    }
}

pub fn snapshot(room: &Room) -> RoomSnapshot {
    let state = match RoomState::try_from(room.state) {
        Ok(RoomState::New) => "new",
        Ok(RoomState::Open) => "open",
        Ok(RoomState::Closed) => "closed",
        _ => "unspecified",
    };
    let mut connected: Vec<String> = room
        .participants
        .iter()
        .filter(|p| p.status == ParticipantStatus::Connected as i32)
        .map(|p| p.account.clone())
        .collect();
    connected.sort();
    RoomSnapshot {
        id: room.id.clone(),
        state: state.into(),
        version: room.version,
        last_seq: room.last_seq,
        connected,
    }
}
