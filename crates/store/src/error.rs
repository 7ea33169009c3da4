use roomd_model::RoomError;

pub type StoreResult<T> = Result<T, StoreError>;

/// Failures of a store operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached; nothing was applied.
    #[error("store unavailable: {0}")]
    Unavailable(String),

    /// The write may or may not have applied (for example, the connection
    /// dropped after the command was sent). The writer must reload.
    #[error("store outcome unknown: {0}")]
    Ambiguous(String),

    /// The stored room is not at the version the writer expected, so the
    /// writer's copy is stale. Nothing was applied.
    #[error("room {room_id} is at version {actual}, not {expected}")]
    VersionMismatch {
        room_id: String,
        expected: u64,
        actual: u64,
    },

    /// The writer's lease no longer matches the room record: another node
    /// owns the room now. Nothing was applied.
    #[error("room {room_id} is no longer owned by this node")]
    Fenced { room_id: String },

    /// The org already has its maximum of rooms that are not closed.
    #[error("org {org} already has {max} open rooms")]
    OpenRoomLimit { org: String, max: u32 },

    /// The room to change does not exist (any more).
    #[error("room {0} not found in the store")]
    RoomMissing(String),

    /// A stored value could not be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<StoreError> for RoomError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::RoomMissing(room_id) => RoomError::RoomNotFound { room_id },
            StoreError::OpenRoomLimit { org, max } => RoomError::MaxOpenRooms { org, max },
            StoreError::Fenced { room_id } => RoomError::NotOwner {
                room_id,
                owner: None,
            },
            StoreError::VersionMismatch { room_id, .. } => RoomError::OwnerUnavailable {
                room_id,
                message: "the room changed under its owner, which is reloading it".into(),
            },
            // The fault's own text already starts with "store unavailable".
            StoreError::Unavailable(message) => RoomError::StoreUnavailable { message },
            other => RoomError::StoreUnavailable {
                message: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_fault_names_the_store_once() {
        let fault = RoomError::from(StoreError::Unavailable("connection refused".into()));
        assert_eq!(fault.to_string(), "store unavailable: connection refused");
        assert_eq!(fault.reason(), "unavailable.store");
    }

    #[test]
    fn fenced_write_sends_the_request_on() {
        let fault = RoomError::from(StoreError::Fenced {
            room_id: "r1".into(),
        });
        assert_eq!(
            fault,
            RoomError::NotOwner {
                room_id: "r1".into(),
                owner: None
            }
        );
    }
}
