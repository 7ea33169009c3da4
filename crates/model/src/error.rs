//! Faults shared by every layer of roomd. Each variant has a stable dotted
//! reason (for example `accessDenied.read`) that clients match on; the server
//! maps variants to gRPC status codes in one place.

use std::time::Duration;

use crate::acl::Level;

pub type RoomResult<T> = Result<T, RoomError>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoomError {
    #[error("room {room_id} not found")]
    RoomNotFound { room_id: String },

    #[error("org {org} has no room definition")]
    DefinitionNotFound { org: String },

    #[error("{required} access to room {room_id} denied")]
    AccessDenied { room_id: String, required: Level },

    #[error(
        "only the calling service itself, acting for no account, may change the room definition of org {org}"
    )]
    DefinitionAccessDenied { org: String },

    #[error("only the calling service itself, acting for no account, may call {operation}")]
    ChaosAccessDenied { operation: String },

    #[error("authentication required: {message}")]
    Unauthenticated { message: String },

    #[error("invalid {path}: {message}")]
    Validation { path: String, message: String },

    #[error("room {room_id} is closed")]
    Closed { room_id: String },

    #[error("room {room_id} is not open")]
    NotOpen { room_id: String },

    #[error("room {room_id} cannot go from {from} to {to}")]
    Transition {
        room_id: String,
        from: String,
        to: String,
    },

    #[error("room {room_id} already has its maximum of {max} connected participants")]
    MaxParticipants { room_id: String, max: u32 },

    #[error("org {org} already has its maximum of {max} open rooms")]
    MaxOpenRooms { org: String, max: u32 },

    #[error("room {room_id} already has its maximum of {max} watchers on this node")]
    RoomWatchers { room_id: String, max: usize },

    #[error("the caller already has its maximum of {max} open watches on this node")]
    CallerWatchers { max: usize },

    #[error("too many requests from this caller: the limit is {per_second} per second; retry in {} ms", retry_after.as_millis())]
    RateLimited {
        per_second: u32,
        retry_after: Duration,
    },

    #[error("request is larger than the limit of {max_bytes} bytes")]
    RequestTooLarge { max_bytes: usize },

    #[error("room {room_id} is at version {actual}, not the expected {expected}")]
    VersionConflict {
        room_id: String,
        expected: u64,
        actual: u64,
    },

    #[error("store unavailable: {message}")]
    StoreUnavailable { message: String },

    #[error("owner of room {room_id} unavailable: {message}; retry")]
    OwnerUnavailable { room_id: String, message: String },

    /// This node does not own the room. Inside a cluster the request goes
    /// on to `owner`, or, with no owner, to a node that claims the room; a
    /// client sees it only when that fails, as a retryable fault.
    #[error("room {room_id} is owned by another node; retry")]
    NotOwner {
        room_id: String,
        owner: Option<String>,
    },
}

impl RoomError {
    /// Builds a validation fault for the field at `path`.
    pub fn validation(path: impl Into<String>, message: impl Into<String>) -> Self {
        RoomError::Validation {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Returns the stable dotted reason that clients match on.
    pub fn reason(&self) -> &'static str {
        match self {
            RoomError::RoomNotFound { .. } => "notFound.room",
            RoomError::DefinitionNotFound { .. } => "notFound.definition",
            RoomError::AccessDenied { required, .. } => match required {
                Level::Share => "accessDenied.share",
                Level::Update => "accessDenied.update",
                Level::Delete => "accessDenied.delete",
                _ => "accessDenied.read",
            },
            RoomError::DefinitionAccessDenied { .. } => "accessDenied.update",
            RoomError::ChaosAccessDenied { .. } => "accessDenied.delete",
            RoomError::Unauthenticated { .. } => "unauthenticated",
            RoomError::Validation { .. } => "invalidArgument.validation",
            RoomError::Closed { .. } => "invalidState.closed",
            RoomError::NotOpen { .. } => "invalidState.notOpen",
            RoomError::Transition { .. } => "invalidState.transition",
            RoomError::MaxParticipants { .. } => "limit.maxParticipants",
            RoomError::MaxOpenRooms { .. } => "limit.maxOpenRooms",
            RoomError::RoomWatchers { .. } | RoomError::CallerWatchers { .. } => "limit.watchers",
            RoomError::RateLimited { .. } => "limit.rate",
            RoomError::RequestTooLarge { .. } => "limit.requestSize",
            RoomError::VersionConflict { .. } => "conflict.version",
            RoomError::StoreUnavailable { .. } => "unavailable.store",
            RoomError::OwnerUnavailable { .. } | RoomError::NotOwner { .. } => "unavailable.owner",
        }
    }

    /// Returns the fields that go into the fault's `ErrorInfo` metadata.
    pub fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            RoomError::RoomNotFound { room_id }
            | RoomError::AccessDenied { room_id, .. }
            | RoomError::Closed { room_id }
            | RoomError::NotOpen { room_id }
            | RoomError::Transition { room_id, .. }
            | RoomError::OwnerUnavailable { room_id, .. }
            | RoomError::NotOwner { room_id, .. } => vec![("roomId", room_id.clone())],
            RoomError::MaxParticipants { room_id, max } => {
                vec![("roomId", room_id.clone()), ("max", max.to_string())]
            }
            RoomError::VersionConflict {
                room_id, actual, ..
            } => vec![("roomId", room_id.clone()), ("version", actual.to_string())],
            RoomError::DefinitionNotFound { org } | RoomError::DefinitionAccessDenied { org } => {
                vec![("org", org.clone())]
            }
            RoomError::MaxOpenRooms { org, max } => {
                vec![("org", org.clone()), ("max", max.to_string())]
            }
            RoomError::Validation { path, .. } => vec![("path", path.clone())],
            RoomError::ChaosAccessDenied { operation } => vec![("operation", operation.clone())],
            RoomError::RoomWatchers { room_id, max } => vec![
                ("roomId", room_id.clone()),
                ("scope", "room".to_owned()),
                ("max", max.to_string()),
            ],
            RoomError::CallerWatchers { max } => {
                vec![("scope", "caller".to_owned()), ("max", max.to_string())]
            }
            RoomError::RateLimited {
                per_second,
                retry_after,
            } => vec![
                ("max", per_second.to_string()),
                ("retryAfterMs", retry_after.as_millis().to_string()),
            ],
            RoomError::RequestTooLarge { max_bytes } => vec![("max", max_bytes.to_string())],
            RoomError::Unauthenticated { .. } | RoomError::StoreUnavailable { .. } => vec![],
        }
    }

    /// Tells whether the caller may safely retry the same request.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RoomError::StoreUnavailable { .. }
                | RoomError::OwnerUnavailable { .. }
                | RoomError::NotOwner { .. }
        )
    }
}
