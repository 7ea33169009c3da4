//! gRPC services of the public API. Each handler reads the caller from the
//! metadata, converts the request into model values, calls the
//! [`roomd_actors::RoomService`], and converts the result back. Faults go
//! through [`crate::fault::status`].

mod definitions;
mod rooms;

pub use definitions::DefinitionsApi;
pub use rooms::RoomsApi;

use roomd_model::{RoomError, RoomId};
use tonic::{Request, Status};

use crate::caller::Caller;
use crate::fault;

fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    Caller::from_metadata(request.metadata()).map_err(fault::status)
}

fn room_id(text: &str) -> Result<RoomId, Status> {
    if text.is_empty() {
        return Err(fault::status(RoomError::validation(
            "roomId",
            "is required",
        )));
    }
    RoomId::parse_at("roomId", text).map_err(fault::status)
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}
