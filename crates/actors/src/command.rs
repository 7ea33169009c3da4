//! Requests that change a room, applied through the model.

use chrono::{DateTime, Utc};
use roomd_model::{Event, Limits, Principal, Room, RoomDefinition, RoomResult, UpdateDocument};

/// A change a client asks of a room.
#[derive(Debug, Clone)]
pub enum Command {
    Update {
        document: UpdateDocument,
        expected_version: Option<u64>,
    },
    Join {
        account: Option<String>,
    },
    Leave {
        account: Option<String>,
    },
    Close,
    Delete,
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Update { .. } => "update",
            Command::Join { .. } => "join",
            Command::Leave { .. } => "leave",
            Command::Close => "close",
            Command::Delete => "delete",
        }
    }

    /// Tells whether applying the command needs the org's room definition.
    pub fn needs_definition(&self) -> bool {
        matches!(self, Command::Update { .. })
    }

    /// Applies the command to `room` within `limits`, returning the events
    /// of the change. On a fault the room is unchanged.
    pub fn apply(
        &self,
        room: &mut Room,
        principal: &Principal,
        definition: &RoomDefinition,
        limits: &Limits,
        now: DateTime<Utc>,
    ) -> RoomResult<Vec<Event>> {
        match self {
            Command::Update {
                document,
                expected_version,
            } => room.update(
                principal,
                document,
                definition,
                limits,
                *expected_version,
                now,
            ),
            Command::Join { account } => room.join(principal, account.as_deref(), now),
            Command::Leave { account } => room.leave(principal, account.as_deref(), now),
            Command::Close => room.close(principal, now),
            Command::Delete => room.delete(principal, now),
        }
    }
}
