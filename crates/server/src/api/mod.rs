//! gRPC services of the public API. Each handler reads the caller from the
//! metadata, converts the request into model values, calls the
//! [`roomd_actors::RoomService`], and converts the result back. Faults go
//! through [`crate::fault::status`].

mod chaos;
mod definitions;
mod forward;
mod rooms;

pub use chaos::ChaosApi;
pub use definitions::DefinitionsApi;
pub use forward::{FORWARDED_BY_HEADER, Forwarder};
pub use rooms::RoomsApi;

use roomd_model::{RoomError, RoomId, RoomResult};
use tonic::{Request, Status};

use crate::caller::Caller;
use crate::fault;

/// Returns the caller that [`crate::auth::AuthInterceptor`] resolved. A
/// request that reached a handler without it was not authenticated, so it
/// is rejected.
fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| {
            fault::status(RoomError::Unauthenticated {
                message: "the request was not authenticated".into(),
            })
        })
}

fn room_id(text: &str) -> Result<RoomId, Status> {
    parse_room_id(text).map_err(fault::status)
}

fn parse_room_id(text: &str) -> RoomResult<RoomId> {
    if text.is_empty() {
        return Err(RoomError::validation("roomId", "is required"));
    }
    RoomId::parse_at("roomId", text)
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}
