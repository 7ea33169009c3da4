//! Entries of a room's event log. Every accepted change appends one or more
//! events; `seq` is gapless and increasing per room.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::room::RoomId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventName {
    #[serde(rename = "room.created")]
    RoomCreated,
    #[serde(rename = "room.opened")]
    RoomOpened,
    #[serde(rename = "room.updated")]
    RoomUpdated,
    #[serde(rename = "room.aclChanged")]
    RoomAclChanged,
    #[serde(rename = "room.closed")]
    RoomClosed,
    #[serde(rename = "participant.joined")]
    ParticipantJoined,
    #[serde(rename = "participant.left")]
    ParticipantLeft,
}

impl EventName {
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::RoomCreated => "room.created",
            EventName::RoomOpened => "room.opened",
            EventName::RoomUpdated => "room.updated",
            EventName::RoomAclChanged => "room.aclChanged",
            EventName::RoomClosed => "room.closed",
            EventName::ParticipantJoined => "participant.joined",
            EventName::ParticipantLeft => "participant.left",
        }
    }

    /// Returns the kind of object the event is about.
    pub fn object_type(self) -> EventType {
        match self {
            EventName::ParticipantJoined | EventName::ParticipantLeft => EventType::Participant,
            _ => EventType::Room,
        }
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of object an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Room,
    Participant,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Room => "room",
            EventType::Participant => "participant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub seq: u64,
    /// The kind of object the event is about; follows from `name`.
    #[serde(rename = "type")]
    pub object_type: EventType,
    pub name: EventName,
    pub room_id: RoomId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
    /// The room's version after the change.
    pub version: u64,
    /// Ownership epoch of the node that committed the change.
    pub epoch: u64,
}

impl Event {
    /// Tells whether this event ends the room's log.
    pub fn is_terminal(&self) -> bool {
        self.name == EventName::RoomClosed
    }
}
