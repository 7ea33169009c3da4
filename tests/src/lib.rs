//! Test harness for roomd's integration tests.
//!
//! - [`TestNode`] ([`node`]): a roomd node started in this process on a free
//!   loopback port, with connected `Rooms` and `Definitions` clients and a
//!   handle on its `RoomService` (for `RoomService::kill_room`).
//! - [`Caller`] ([`caller`]): builds requests that carry the `x-roomd-org`,
//!   `x-roomd-account` and `x-roomd-roles` metadata.
//! - [`Fault`] and [`expect_fault`] ([`fault`]): read the `ErrorInfo`
//!   reason, domain and metadata and the `BadRequest` fields from a failed
//!   call.
//! - [`eventually`] ([`poll`]): polls a condition until it is true or a
//!   timeout passes, so tests never sleep a guessed time to wait for
//!   something.
//! - [`requests`]: request builders and calls shared by the test files, such
//!   as [`open_room`] and [`watch_events`].
//! - [`binary`] and [`RoomdProcess`] ([`process`]): the workspace binaries
//!   (`roomd`, `roomctl`), built once per test process, and a real `roomd`
//!   process on a free loopback port, for multi-process tests, with
//!   signals (SIGTERM, SIGKILL, SIGSTOP, SIGCONT).
//! - [`RedisServer`] ([`redis`]): a real `redis-server` on a free loopback
//!   port with the append-only file on, which can be stopped, killed and
//!   restarted with its data.
//! - [`TestCa`] ([`tls`]) and [`JwtKeys`] ([`jwt`]): certificates, keys
//!   and tokens made at test time, for authentication tests.
//! - [`Cluster`] ([`cluster`]): several `roomd` processes sharing one
//!   [`RedisServer`], each of which can be signalled and restarted.
//!
//! Every address here is a loopback address.

pub mod caller;
pub mod cluster;
pub mod fault;
pub mod jwt;
pub mod node;
pub mod poll;
pub mod process;
pub mod redis;
pub mod requests;
pub mod tls;

pub use self::redis::RedisServer;
pub use caller::Caller;
pub use cluster::{Cluster, ClusterBuilder, ClusterNode};
pub use fault::{Fault, bad_request_fields, error_info, expect_fault};
pub use jwt::JwtKeys;
pub use node::{TestNode, connect};
pub use poll::eventually;
pub use process::{RoomdProcess, binary, free_loopback_address, run_roomd};
pub use requests::*;
pub use tls::TestCa;

/// Fully qualified name of the public rooms service, as health checks and
/// server reflection name it.
pub const ROOMS_SERVICE: &str = "roomd.v1.Rooms";
/// Fully qualified name of the room definitions service.
pub const DEFINITIONS_SERVICE: &str = "roomd.v1.Definitions";
pub mod cluster_client;
