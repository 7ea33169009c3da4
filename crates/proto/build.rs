//! Compiles `proto/roomd/v1` with protox, a pure-Rust protobuf compiler, so
//! the build needs no `protoc` on the machine. The encoded descriptor set is
//! kept for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

const PROTO_ROOT: &str = "../../proto";
const PROTO_FILES: &[&str] = &[
    "../../proto/roomd/v1/rooms.proto",
    "../../proto/roomd/v1/chaos.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");

    let descriptors = protox::compile(PROTO_FILES, [PROTO_ROOT])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("roomd_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
