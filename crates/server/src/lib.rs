//! The roomd server: the public gRPC API over a node's room actors.
//!
//! - [`config`]: command-line flags and their `ROOMD_*` environment
//!   variables, turned into a [`ServerConfig`].
//! - [`api`]: the `Rooms` and `Definitions` gRPC services.
//! - [`auth`]: authentication of callers and nodes (TLS, client
//!   certificates, service tokens, JWTs) and the caller it resolves to.
//! - [`caller`]: the org and acting principal read from request metadata.
//! - [`limits`]: the request rate per caller and the request size limit.
//! - [`fault`]: the one mapping from [`roomd_model::RoomError`] to gRPC
//!   statuses with `ErrorInfo` and `BadRequest` details.
//! - [`metrics`]: the Prometheus exporter and the metrics roomd records.
//! - [`RoomdServer`]: starts the node and serves it until shutdown.

pub mod api;
pub mod auth;
pub mod caller;
pub mod config;
pub mod fault;
pub mod limits;
pub mod metrics;
mod server;

pub use config::{Args, LogFormat, Security, ServerConfig};
pub use server::{RoomdServer, ServerError};
