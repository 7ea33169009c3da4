//! The rooms the benchmarks create, and bulk creation straight through
//! [`RoomService::create`] for setup steps that are not measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use roomd_actors::RoomService;
use roomd_model::room::MAX_PARTICIPANTS;
use roomd_model::{ConfigurationInput, NewRoom, Principal};
use roomd_proto::v1::{CreateRoomRequest, RoomConfigurationInput};
use tokio::task::JoinSet;

/// Org of every benchmark request and room.
pub const ORG: &str = "bench";
/// Account that creates the rooms. As their owner it may also read them.
pub const OWNER: &str = "bench-owner";
pub const LABEL: &str = "Benchmark visit";
/// Lets any account of the org read the room, and so join it itself.
pub const PUBLIC_READ: &str = "account.public.read";
/// Unused timeout of the benchmark rooms in seconds: the 24 h maximum,
/// longer than any run with `--duration`, so that no room closes during one.
pub const UNUSED_TIMEOUT_SECS: u32 = roomd_model::room::MAX_TIMEOUT_SECS;

/// Builds the create request the benchmarks send over gRPC: an open room
/// that allows the maximum number of participants.
pub fn create_request() -> CreateRoomRequest {
    CreateRoomRequest {
        label: LABEL.into(),
        acl: vec![PUBLIC_READ.into()],
        open: true,
        configuration: Some(RoomConfigurationInput {
            max_participants: Some(MAX_PARTICIPANTS),
            unused_timeout: Some(UNUSED_TIMEOUT_SECS),
            ..RoomConfigurationInput::default()
        }),
        ..CreateRoomRequest::default()
    }
}

/// Builds the same room as [`create_request`], for [`RoomService::create`].
pub fn new_room() -> NewRoom {
    NewRoom {
        label: LABEL.into(),
        acl: vec![PUBLIC_READ.into()],
        open: true,
        configuration: ConfigurationInput {
            max_participants: Some(MAX_PARTICIPANTS),
            unused_timeout: Some(UNUSED_TIMEOUT_SECS),
            ..ConfigurationInput::default()
        },
        ..NewRoom::default()
    }
}

/// Creates `count` rooms as [`OWNER`] with `concurrency` tasks, and returns
/// their ids in no particular order.
pub async fn create_many(
    service: &RoomService,
    count: u32,
    concurrency: u32,
) -> Result<Vec<String>, String> {
    let remaining = Arc::new(AtomicU32::new(count));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.min(count.max(1)) {
        let service = service.clone();
        let remaining = remaining.clone();
        tasks.spawn(async move {
            let owner = Principal::account(OWNER);
            let mut ids = Vec::new();
            // Each task claims one room at a time until none is left.
            while remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(1)
                })
                .is_ok()
            {
                let room = service
                    .create(ORG, &owner, new_room(), None)
                    .await
                    .map_err(|e| format!("cannot create a benchmark room: {e}"))?;
                ids.push(room.id.to_string());
            }
            Ok::<_, String>(ids)
        });
    }

    let mut ids = Vec::with_capacity(count as usize);
    while let Some(joined) = tasks.join_next().await {
        let created = joined.map_err(|e| format!("a room creation task panicked: {e}"))??;
        ids.extend(created);
    }
    Ok(ids)
}
