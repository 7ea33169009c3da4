//! The `roomd.v1` gRPC API: generated messages, clients and servers, plus the
//! conversions between the wire types and `roomd-model`.
//!
//! - [`v1`]: everything generated from `proto/roomd/v1/rooms.proto`.
//! - [`convert`]: wire messages to model values and back.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for server reflection.

pub mod convert;

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("roomd.v1");
}

/// Encoded `FileDescriptorSet` of the roomd API and the well-known types it
/// imports.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/roomd_descriptor.bin"));
