//! The README's first visit, end to end: a real `roomd` process driven by
//! the real `roomctl` binary, checking what a user sees on stdout, stderr
//! and in the exit status.

use std::process::Output;
use std::time::Duration;

use roomd_tests::{RoomdProcess, binary, eventually};
use serde_json::Value;

/// Runs roomctl against `roomd` as `args`, off the async runtime's threads.
async fn roomctl(roomd: &RoomdProcess, args: &[&str]) -> Output {
    let program = binary("roomctl");
    let url = roomd.url();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(program)
            .env("ROOMD_ADDR", url)
            .env_remove("ROOMD_ORG")
            .env_remove("ROOMD_AS")
            .env_remove("ROOMD_ROLES")
            .args(&args)
            .output()
            .expect("roomctl runs")
    })
    .await
    .expect("roomctl task completes")
}

/// Runs roomctl, expects success, and parses its stdout as JSON.
async fn roomctl_json(roomd: &RoomdProcess, args: &[&str]) -> Value {
    let output = roomctl(roomd, args).await;
    assert!(
        output.status.success(),
        "roomctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "roomctl {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Runs roomctl, expects the fault `reason`, and returns stderr.
async fn roomctl_fault(roomd: &RoomdProcess, args: &[&str], reason: &str) -> String {
    let output = roomctl(roomd, args).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "roomctl {args:?}: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "roomctl {args:?} printed to stdout on a fault"
    );
    assert!(
        stderr.starts_with(&format!("error: {reason}: ")),
        "roomctl {args:?}: expected {reason}, got {stderr}"
    );
    stderr
}

fn acl_contains(room: &Value, entry: &str) -> bool {
    room["acl"]
        .as_array()
        .is_some_and(|acl| acl.iter().any(|e| e == entry))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn televisit_scenario_with_roomctl() {
    let roomd = RoomdProcess::spawn(&["--unused-timeout", "2"]).await;

    // 1. Define the org's rooms.
    let definition = roomctl_json(
        &roomd,
        &[
            "define",
            "--label",
            "Room",
            "--property",
            "c_number:Number:indexed",
        ],
    )
    .await;
    assert_eq!(definition["properties"][0]["name"], "c_number");
    assert_eq!(definition["properties"][0]["indexed"], true);

    // 2. Create: new, then open within a second.
    let room = roomctl_json(
        &roomd,
        &[
            "create",
            "--label",
            "My Televisit Room",
            "--acl",
            "account.public.read",
            "--acl",
            "account.anonymous.read",
            "--acl",
            "role.developer.read",
            "--acl",
            "account.acc1.read",
            "--set",
            "c_number=7",
        ],
    )
    .await;
    assert_eq!(room["state"], "new");
    assert_eq!(room["object"], "room");
    assert_eq!(room["c_number"], 7);
    let id = room["_id"].as_str().expect("room has an _id").to_owned();
    eventually(
        Duration::from_secs(1),
        Duration::from_millis(50),
        async || {
            let room = roomctl_json(&roomd, &["get", &id]).await;
            (room["state"] == "open")
                .then_some(())
                .ok_or(format!("state is {}", room["state"]))
        },
    )
    .await;

    // 3. Share with acc2.
    let room = roomctl_json(
        &roomd,
        &["update", &id, r#"{"$push":{"acl":["account.acc2.read"]}}"#],
    )
    .await;
    assert!(acl_contains(&room, "account.acc2.read"), "{room}");

    // 4. acc2 joins and is listed connected.
    roomctl_json(&roomd, &["--as", "acc2", "join", &id]).await;
    let participants = roomctl_json(&roomd, &["participants", &id]).await;
    assert_eq!(
        participants.as_array().map(Vec::len),
        Some(1),
        "{participants}"
    );
    assert_eq!(participants[0]["account"], "acc2");
    assert_eq!(participants[0]["status"], "connected");

    // 5. Find by the indexed property and by state.
    let found = roomctl_json(&roomd, &["find", r#"{"c_number":7}"#]).await;
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["_id"] == id.as_str()),
        "{found}"
    );
    let closed = roomctl_json(&roomd, &["find", r#"{"state":"closed"}"#]).await;
    assert!(
        !closed
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["_id"] == id.as_str()),
        "{closed}"
    );

    // 6. Close: requested, and acc2 is disconnected.
    let room = roomctl_json(&roomd, &["close", &id]).await;
    assert_eq!(room["state"], "closed");
    assert_eq!(room["closeReason"], "requested");
    assert_eq!(room["participants"][0]["status"], "disconnected");

    // 7. A closed room cannot be reopened.
    roomctl_fault(
        &roomd,
        &["update", &id, r#"{"$set":{"state":"open"}}"#],
        "invalidState.closed",
    )
    .await;

    // 8. A room that no one joins closes with unused_timeout about 2 s after it opened.
    let unused = roomctl_json(&roomd, &["create", "--label", "Nobody comes"]).await;
    let unused_id = unused["_id"].as_str().unwrap().to_owned();
    let closed = eventually(
        Duration::from_secs(5),
        Duration::from_millis(100),
        async || {
            let room = roomctl_json(&roomd, &["get", &unused_id]).await;
            (room["state"] == "closed")
                .then_some(room.clone())
                .ok_or(format!("state is {}", room["state"]))
        },
    )
    .await;
    assert_eq!(closed["closeReason"], "unused_timeout");
    let opened: chrono::DateTime<chrono::Utc> =
        closed["openedAt"].as_str().unwrap().parse().unwrap();
    let closed_at: chrono::DateTime<chrono::Utc> =
        closed["closedAt"].as_str().unwrap().parse().unwrap();
    let open_for = (closed_at - opened).num_milliseconds();
    assert!(
        (2000..4000).contains(&open_for),
        "closed {open_for} ms after opening"
    );

    // 9. Access control on a room whose ACL grants only account.acc1.read.
    let private = roomctl_json(
        &roomd,
        &["create", "--label", "Private", "--acl", "account.acc1.read"],
    )
    .await;
    let private_id = private["_id"].as_str().unwrap().to_owned();
    roomctl_fault(
        &roomd,
        &["--as", "acc3", "get", &private_id],
        "accessDenied.read",
    )
    .await;
    roomctl_fault(
        &roomd,
        &[
            "--as",
            "acc1",
            "update",
            &private_id,
            r#"{"$set":{"label":"x"}}"#,
        ],
        "accessDenied.update",
    )
    .await;
    let unchanged = roomctl_json(&roomd, &["get", &private_id]).await;
    assert_eq!(unchanged["label"], "Private");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_one_event_per_line() {
    let roomd = RoomdProcess::spawn(&[]).await;
    let room = roomctl_json(
        &roomd,
        &[
            "create",
            "--label",
            "Watched",
            "--open",
            "--acl",
            "account.public.read",
        ],
    )
    .await;
    let id = room["_id"].as_str().unwrap().to_owned();
    roomctl_json(&roomd, &["--as", "acc1", "join", &id]).await;
    roomctl_json(&roomd, &["close", &id]).await;

    // The room is closed, so the watch replays its log and ends.
    let output = roomctl(&roomd, &["watch", &id, "--from-seq", "2"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON event"))
        .collect();
    let names: Vec<&str> = events.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "room.opened",
            "participant.joined",
            "participant.left",
            "room.closed"
        ]
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [2, 3, 4, 5]);
    assert_eq!(events[1]["type"], "participant");
    assert_eq!(events[1]["accountId"], "acc1");
    assert_eq!(events[3]["reason"], "requested");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_prints_reason_and_path() {
    let roomd = RoomdProcess::spawn(&[]).await;
    let stderr = roomctl_fault(
        &roomd,
        &["create", "--label", "x", "--acl", "account.acc1.admin"],
        "invalidArgument.validation",
    )
    .await;
    assert!(stderr.contains("acl[0]"), "{stderr}");
    roomctl_fault(
        &roomd,
        &["get", "not-a-room-id"],
        "invalidArgument.validation",
    )
    .await;
    roomctl_fault(
        &roomd,
        &["get", "01a242b3-87b0-75b2-9dd3-46dceb2c6fde"],
        "notFound.room",
    )
    .await;
    let stderr = roomctl_fault(
        &roomd,
        &["find", "{\"label\": \"x\"}"],
        "invalidArgument.validation",
    )
    .await;
    assert!(stderr.contains("label"), "{stderr}");

    let found = roomctl_json(&roomd, &["find"]).await;
    assert_eq!(
        found,
        Value::Array(vec![]),
        "a rejected create stored a room"
    );
}

/// `roomctl ... | head` closes the pipe early: roomctl stops quietly with
/// status 0 instead of panicking on the failed write.
#[tokio::test]
async fn closed_stdout_pipe_ends_output_quietly() {
    let roomd = RoomdProcess::spawn(&[]).await;
    let room = roomctl_json(&roomd, &["create", "--label", "Piped", "--open"]).await;
    let room_id = room["_id"].as_str().expect("room id").to_owned();

    for args in [
        vec!["get", room_id.as_str()],
        vec!["watch", room_id.as_str(), "--from-seq", "1"],
    ] {
        let program = binary("roomctl");
        let url = roomd.url();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let output = tokio::task::spawn_blocking(move || {
            let mut child = std::process::Command::new(program)
                .env("ROOMD_ADDR", url)
                .args(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("roomctl starts");
            // Close the read end at once, as `| true` does.
            drop(child.stdout.take());
            child.wait_with_output().expect("roomctl exits")
        })
        .await
        .expect("roomctl task completes");

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
        assert!(!stderr.contains("panicked"), "roomctl panicked: {stderr}");
    }
}
