//! Room actors and the per-node room registry.
//!
//! - [`room_actor`]: one actor per live room. It owns the room's state and
//!   timers, serialises every request for the room, and commits each change
//!   to the store before it replies.
//! - [`registry`]: one actor per node that spawns room actors on demand,
//!   supervises them, and restarts a failed one from the store with backoff
//!   and a per-room restart budget.
//! - [`service`]: [`RoomService`], the handle the server calls: it routes
//!   requests to room actors and serves what needs no actor (finds, watches,
//!   definitions, reads of closed rooms).
//! - `supervisor`: the node's root actor, which restarts a failed registry
//!   and, through it, that registry's rooms.
//! - [`watch`]: replays and follows a room's event log.
//! - [`membership`]: what the registry needs to know about the cluster;
//!   [`SingleNode`] for a node that runs alone.
//! - [`clock`]: wall-clock time, replaceable in tests.

mod acquire;
pub mod clock;
mod command;
pub mod membership;
pub mod registry;
pub mod room_actor;
pub mod service;
mod supervisor;
mod watch;

pub use clock::{Clock, SystemClock, TokioClock};
pub use command::Command;
pub use membership::{Membership, SingleNode};
pub use service::{RoomService, ServiceConfig};
