//! The unused timeout in real time, over gRPC. Every other timer is tested
//! with paused time in `crates/actors/tests/timers.rs`; this one test checks
//! that the server's wall clock drives them too.

use std::time::Duration;

use roomd_model::RoomDefaults;
use roomd_proto::convert;
use roomd_proto::v1::{CloseReason, CreateRoomRequest, RoomState};
use roomd_server::ServerConfig;
use roomd_tests::{Caller, TestNode, get_room, join_room, wait_for_state};

const ORG: &str = "clinic1";

#[tokio::test]
async fn unused_room_closes_after_timeout() {
    let mut config = ServerConfig::default();
    config.service.defaults = RoomDefaults {
        unused_timeout: 1,
        ..RoomDefaults::default()
    };
    let node = TestNode::start_with(config).await;
    let mut rooms = node.rooms.clone();
    let service = Caller::service(ORG);
    let new_room = |label: &str| CreateRoomRequest {
        label: label.to_owned(),
        acl: vec!["account.public.read".to_owned()],
        ..CreateRoomRequest::default()
    };

    // The joined room is created first, so its unused deadline passes
    // before the other room's: if the join did not cancel it, it would
    // close first.
    let used = node.create_room(&service, new_room("Used")).await;
    let open = RoomState::Open;
    wait_for_state(&mut rooms, &service, &used.id, open, Duration::from_secs(2)).await;
    join_room(&mut rooms, &Caller::account(ORG, "patient1"), &used.id).await;
    let unused = node.create_room(&service, new_room("Unused")).await;

    let closed = RoomState::Closed;
    let closed = wait_for_state(
        &mut rooms,
        &service,
        &unused.id,
        closed,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(closed.close_reason, CloseReason::UnusedTimeout as i32);
    let opened_at = closed
        .opened_at
        .expect("a room that closed unused had opened");
    let closed_at = closed.closed_at.expect("a closed room has closedAt");
    let open_for = convert::from_timestamp("closedAt", &closed_at).unwrap()
        - convert::from_timestamp("openedAt", &opened_at).unwrap();
    assert!(
        open_for >= chrono::Duration::seconds(1),
        "closed after {open_for}, before the 1 s timeout"
    );

    let still_used = get_room(&mut rooms, &service, &used.id).await;
    assert_eq!(
        still_used.state,
        RoomState::Open as i32,
        "the joined room closed"
    );
}
