//! The harness's process helpers: the `roomd` binary built by [`binary`]
//! and run by [`RoomdProcess`] on a free loopback port.

use std::time::Duration;

use roomd_proto::v1::RoomState;
use roomd_tests::{Caller, RoomdProcess, binary, create_room, get_room, open_room};

#[test]
fn binary_is_in_profile_dir() {
    let roomd = binary("roomd");
    assert!(roomd.is_file(), "{} is not a file", roomd.display());

    let test_executable = std::env::current_exe().unwrap();
    let profile_dir = test_executable
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap();
    assert_eq!(roomd.parent(), Some(profile_dir));

    // Later calls reuse the build.
    assert_eq!(binary("roomd"), roomd);
}

#[test]
#[should_panic(expected = "not a workspace binary")]
fn unknown_binary_is_rejected() {
    binary("roomd-nope");
}

#[tokio::test]
async fn roomd_process_serves_and_stops_on_sigterm() {
    let mut process = RoomdProcess::spawn(&["--max-participants", "3"]).await;
    assert!(process.address.ip().is_loopback());

    let mut rooms = process.rooms_client().await;
    let caller = Caller::service("clinic1");
    let room = create_room(&mut rooms, &caller, open_room("Visit", &[])).await;
    assert_eq!(room.state, RoomState::Open as i32);
    let configuration = room
        .configuration
        .as_ref()
        .expect("a room has a configuration");
    assert_eq!(
        configuration.max_participants, 3,
        "--max-participants did not reach roomd"
    );
    assert_eq!(get_room(&mut rooms, &caller, &room.id).await, room);
    drop(rooms);

    let status = process.terminate(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "roomd exited with {status}:\n{}",
        process.log()
    );
    let log = process.log();
    assert!(log.contains("roomd listening"), "log:\n{log}");
    assert!(log.contains("roomd stopped"), "log:\n{log}");
}

#[tokio::test]
async fn roomd_process_rejects_bad_flag() {
    // roomd exits at once, so spawning must fail with its message, not hang.
    let spawned = tokio::spawn(RoomdProcess::spawn(&["--unused-timeout", "0"]));
    let error = spawned
        .await
        .expect_err("roomd started with an invalid flag");
    let message = error
        .into_panic()
        .downcast::<String>()
        .map(|message| *message)
        .unwrap_or_default();
    assert!(
        message.contains("before it served"),
        "panic message: {message}"
    );
    assert!(
        message.contains("unused-timeout"),
        "panic message: {message}"
    );
}
