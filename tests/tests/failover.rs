//! A room actor killed in the middle of traffic: the registry restarts it
//! from the store, no acknowledged change is lost, and the room's event log
//! keeps no gap and no duplicate.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use roomd_model::RoomId;
use roomd_proto::v1::{ParticipantStatus, Room};
use roomd_tests::{
    Caller, Fault, TestNode, all_events, close_room, eventually, get_room, join_request, join_room,
    leave_request, open_room_with_max, seqs, update_request, watch_events,
};
use tonic::Status;
use tonic::transport::Channel;

type RoomsClient = roomd_proto::v1::rooms_client::RoomsClient<Channel>;

const ORG: &str = "clinic1";
const JOIN_TASKS: usize = 3;
const ACCOUNTS_PER_JOIN_TASK: usize = 12;
const PUSH_TASKS: usize = 2;
const PUSHES_PER_TASK: usize = 25;
/// Acknowledged requests after which the killer strikes, one kill each.
const KILL_AFTER_ACKS: [usize; 3] = [15, 45, 75];
/// Attempts per request before the test gives up on the restarting room.
const MAX_ATTEMPTS: usize = 50;

/// Tells whether a request was acknowledged. `unavailable.owner` means that
/// the room's actor stopped before it replied (the kill), so the request may
/// or may not have applied. Every request here is idempotent, so the caller
/// sends it again. Any other fault fails the test, and so does a request
/// still unacknowledged after `MAX_ATTEMPTS`.
fn acknowledged<T>(request_name: &str, attempt: usize, result: Result<T, Status>) -> bool {
    let Err(status) = result else {
        return true;
    };
    let fault = Fault::from_status(&status);
    assert_eq!(
        fault.reason, "unavailable.owner",
        "{request_name} failed: {fault:?}"
    );
    assert!(
        attempt < MAX_ATTEMPTS,
        "{request_name} was not acknowledged in {MAX_ATTEMPTS} attempts"
    );
    false
}

/// Joins accounts `j<task>-<i>` one after another, and has every second one
/// leave again. Returns the accounts that joined and those that left.
async fn join_and_leave(
    mut rooms: RoomsClient,
    room_id: String,
    task: usize,
    acks: Arc<AtomicUsize>,
) -> (Vec<String>, Vec<String>) {
    let (mut joined, mut left) = (Vec::new(), Vec::new());
    for i in 0..ACCOUNTS_PER_JOIN_TASK {
        let account = format!("j{task}-{i}");
        let caller = Caller::account(ORG, &account);
        for attempt in 1.. {
            let result = rooms
                .join_room(caller.request(join_request(&room_id, "")))
                .await;
            if acknowledged(&format!("join of {account}"), attempt, result) {
                break;
            }
        }
        acks.fetch_add(1, Ordering::SeqCst);
        joined.push(account.clone());

        if i % 2 == 0 {
            for attempt in 1.. {
                let request = leave_request(&room_id, "");
                let result = rooms.leave_room(caller.request(request)).await;
                if acknowledged(&format!("leave of {account}"), attempt, result) {
                    break;
                }
            }
            acks.fetch_add(1, Ordering::SeqCst);
            left.push(account);
        }
    }
    (joined, left)
}

/// Pushes ACL entries `account.p<task>-<i>.read` one after another and
/// returns them.
async fn push_acl_entries(
    mut rooms: RoomsClient,
    room_id: String,
    task: usize,
    acks: Arc<AtomicUsize>,
) -> Vec<String> {
    let mut pushed = Vec::new();
    for i in 0..PUSHES_PER_TASK {
        let entry = format!("account.p{task}-{i}.read");
        let document = serde_json::json!({"$push": {"acl": [entry]}}).to_string();
        for attempt in 1.. {
            let request = update_request(&room_id, &document);
            let result = rooms
                .update_room(Caller::service(ORG).request(request))
                .await;
            if acknowledged(&format!("push of {entry}"), attempt, result) {
                break;
            }
        }
        acks.fetch_add(1, Ordering::SeqCst);
        pushed.push(entry);
    }
    pushed
}

fn status_of(room: &Room, account: &str) -> Option<ParticipantStatus> {
    room.participants
        .iter()
        .find(|p| p.account == account)
        .map(|p| ParticipantStatus::try_from(p.status).expect("a known participant status"))
}

#[tokio::test]
async fn killed_room_actor_keeps_acked_changes() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let service = Caller::service(ORG);
    let create = open_room_with_max("Visit", &["account.public.read"], 50);
    let room = node.create_room(&service, create).await;
    let room_id: RoomId = room.id.parse().expect("the server returns a valid room id");

    let acks = Arc::new(AtomicUsize::new(0));
    let joiners: Vec<_> = (0..JOIN_TASKS)
        .map(|task| {
            tokio::spawn(join_and_leave(
                node.rooms.clone(),
                room.id.clone(),
                task,
                acks.clone(),
            ))
        })
        .collect();
    let pushers: Vec<_> = (0..PUSH_TASKS)
        .map(|task| {
            tokio::spawn(push_acl_entries(
                node.rooms.clone(),
                room.id.clone(),
                task,
                acks.clone(),
            ))
        })
        .collect();

    let mut kills_of_running_actor = 0;
    for threshold in KILL_AFTER_ACKS {
        eventually(
            Duration::from_secs(10),
            Duration::from_millis(1),
            async || {
                let acked = acks.load(Ordering::SeqCst);
                if acked >= threshold {
                    Ok(())
                } else {
                    Err(format!("{acked} of {threshold} requests acknowledged"))
                }
            },
        )
        .await;
        if node.service.kill_room(room_id) {
            kills_of_running_actor += 1;
        }
    }

    let (mut joined, mut left) = (Vec::new(), Vec::new());
    for joiner in joiners {
        let (task_joined, task_left) = joiner.await.expect("join task panicked");
        joined.extend(task_joined);
        left.extend(task_left);
    }
    let mut pushed = Vec::new();
    for pusher in pushers {
        pushed.extend(pusher.await.expect("push task panicked"));
    }
    assert!(
        kills_of_running_actor > 0,
        "no kill found a running room actor"
    );
    assert!(
        acks.load(Ordering::SeqCst) > KILL_AFTER_ACKS[KILL_AFTER_ACKS.len() - 1],
        "traffic ended before the last kill"
    );

    // The room keeps serving.
    let latecomer = Caller::account(ORG, "latecomer");
    join_room(&mut rooms, &latecomer, &room.id).await;

    // Every acknowledged change is there, once.
    let after = get_room(&mut rooms, &service, &room.id).await;
    for entry in &pushed {
        assert!(
            after.acl.contains(entry),
            "acknowledged ACL entry {entry} is missing"
        );
    }
    assert_eq!(
        after.acl.len(),
        room.acl.len() + pushed.len(),
        "acl: {:?}",
        after.acl
    );
    for account in &joined {
        let expected = if left.contains(account) {
            ParticipantStatus::Disconnected
        } else {
            ParticipantStatus::Connected
        };
        assert_eq!(
            status_of(&after, account),
            Some(expected),
            "status of {account}"
        );
    }
    assert_eq!(
        status_of(&after, "latecomer"),
        Some(ParticipantStatus::Connected)
    );
    assert_eq!(after.participants.len(), joined.len() + 1);

    // The event log, read back from the start once the room is closed,
    // has every sequence number once, in order.
    let closed = close_room(&mut rooms, &service, &room.id).await;
    let mut stream = watch_events(&mut rooms, &service, &room.id, 1).await;
    let events = all_events(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(seqs(&events), (1..=closed.last_seq).collect::<Vec<_>>());
    assert_eq!(events.last().map(|e| e.name.as_str()), Some("room.closed"));

    let mut joins_per_account: HashMap<&str, usize> = HashMap::new();
    let mut leaves_per_account: HashMap<&str, usize> = HashMap::new();
    for event in &events {
        match event.name.as_str() {
            "participant.joined" => *joins_per_account.entry(&event.account_id).or_default() += 1,
            "participant.left" => *leaves_per_account.entry(&event.account_id).or_default() += 1,
            _ => {}
        }
    }
    for account in joined.iter().map(String::as_str).chain(["latecomer"]) {
        assert_eq!(
            joins_per_account.get(account),
            Some(&1),
            "joins of {account}"
        );
        // Each left once: on its own, or when the room closed.
        assert_eq!(
            leaves_per_account.get(account),
            Some(&1),
            "leaves of {account}"
        );
    }
    let acl_changes = events
        .iter()
        .filter(|e| e.name == "room.aclChanged")
        .count();
    assert_eq!(acl_changes, pushed.len());
}
