//! The room model of roomd, free of I/O. Everything here is a pure function
//! of its inputs and the `now` it is given. The actor, store and server
//! crates therefore share one definition of the rules, and tests run it
//! without a runtime.
//!
//! - [`room`]: the room record, its state machine, participants and timers.
//! - [`acl`]: ACL entries (`type.target.level`), principals and access levels.
//! - [`definition`]: the per-org room definition and custom property values.
//! - [`update`]: JSON update documents, validated whole before they apply.
//! - [`limits`]: [`Limits`] on request size and shape, watchers and rate.
//! - [`filter`]: `FindRooms` filter documents and sort orders.
//! - [`event`]: entries of a room's event log.
//! - [`error`]: [`RoomError`], the faults that every layer returns.

pub mod acl;
pub mod definition;
pub mod error;
pub mod event;
pub mod filter;
pub mod limits;
pub mod room;
pub mod update;
pub mod validate;

pub use acl::{AclEntry, Level, Principal};
pub use definition::{PropertyDefinition, PropertyType, RoomDefinition};
pub use error::{RoomError, RoomResult};
pub use event::{Event, EventName};
pub use filter::{Filter, SortField, SortOrder};
pub use limits::Limits;
pub use room::{
    CloseReason, Configuration, ConfigurationInput, Deadlines, NewRoom, Participant,
    ParticipantStatus, Room, RoomDefaults, RoomId, RoomState,
};
pub use update::UpdateDocument;
