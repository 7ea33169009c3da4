//! `WatchRoom`: replay of the event log from a sequence number, then live
//! events, with no gap and no duplicate, until `room.closed` ends the
//! stream.

use std::time::Duration;

use roomd_proto::v1::RoomEvent;
use roomd_tests::{
    Caller, TestNode, all_events, close_room, event_names, get_room, join_room, leave_request,
    next_events, open_room, open_room_with_max, seqs, update_request, watch_events,
};
use tonic::transport::Channel;

type RoomsClient = roomd_proto::v1::rooms_client::RoomsClient<Channel>;

const ORG: &str = "clinic1";
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

fn service() -> Caller {
    Caller::service(ORG)
}

async fn join(rooms: &mut RoomsClient, room_id: &str, account: &str) {
    join_room(rooms, &Caller::account(ORG, account), room_id).await;
}

/// Asserts what every event of one room shares: the room id, a version that
/// never decreases, and a type that matches the name.
#[track_caller]
fn assert_consistent(events: &[RoomEvent], room_id: &str) {
    let mut version = 0;
    for event in events {
        assert_eq!(event.room_id, room_id, "room id of event {}", event.seq);
        assert!(
            event.version >= version,
            "version went back at event {}",
            event.seq
        );
        version = event.version;
        let expected_type = if event.name.starts_with("participant.") {
            "participant"
        } else {
            "room"
        };
        assert_eq!(event.r#type, expected_type, "type of event {}", event.seq);
    }
}

#[tokio::test]
async fn watch_replays_from_seq_then_follows() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let create = open_room_with_max("Visit", &["account.public.read"], 5);
    let room = node.create_room(&service(), create).await;
    for account in ["acc1", "acc2", "acc3"] {
        join(&mut rooms, &room.id, account).await;
    }
    rooms
        .update_room(service().request(update_request(
            &room.id,
            r#"{"$push":{"acl":["account.nurse1.read"]}}"#,
        )))
        .await
        .expect("push an ACL entry");
    let before = get_room(&mut rooms, &service(), &room.id).await;
    assert_eq!(
        before.last_seq, 6,
        "created, opened, three joins, one ACL change"
    );

    let from_seq = 4;
    let mut stream = watch_events(&mut rooms, &service(), &room.id, from_seq).await;
    let replayed = next_events(&mut stream, 3, EVENT_TIMEOUT).await;
    assert_eq!(seqs(&replayed), [4, 5, 6]);
    assert_eq!(
        event_names(&replayed),
        [
            "participant.joined",
            "participant.joined",
            "room.aclChanged"
        ]
    );
    assert_eq!(replayed[0].account_id, "acc2");

    // Live events follow the replay.
    rooms
        .leave_room(Caller::account(ORG, "acc1").request(leave_request(&room.id, "")))
        .await
        .expect("acc1 leaves");
    let left = next_events(&mut stream, 1, EVENT_TIMEOUT).await;
    assert_eq!(seqs(&left), [7]);
    assert_eq!(left[0].name, "participant.left");
    assert_eq!(left[0].account_id, "acc1");

    // Closing disconnects the two still connected, then ends the stream.
    close_room(&mut rooms, &service(), &room.id).await;
    let rest = all_events(&mut stream, EVENT_TIMEOUT).await;
    assert_eq!(seqs(&rest), [8, 9, 10]);
    assert_eq!(
        event_names(&rest),
        ["participant.left", "participant.left", "room.closed"]
    );
    assert_eq!(rest[2].reason, "requested");

    let all: Vec<RoomEvent> = [replayed, left, rest].concat();
    assert_consistent(&all, &room.id);
}

#[tokio::test]
async fn watch_from_zero_starts_at_first_event() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let room = node.create_room(&service(), open_room("Visit", &[])).await;
    close_room(&mut rooms, &service(), &room.id).await;

    for from_seq in [0, 1] {
        let mut stream = watch_events(&mut rooms, &service(), &room.id, from_seq).await;
        let events = all_events(&mut stream, EVENT_TIMEOUT).await;
        assert_eq!(
            event_names(&events),
            ["room.created", "room.opened", "room.closed"],
            "from {from_seq}"
        );
        assert_eq!(seqs(&events), [1, 2, 3], "from {from_seq}");
    }
}

#[tokio::test]
async fn watcher_before_changes_sees_each_once() {
    const JOINERS: usize = 20;
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let create = open_room_with_max("Visit", &["account.public.read"], JOINERS as u32);
    let room = node.create_room(&service(), create).await;
    let mut stream = watch_events(&mut rooms, &service(), &room.id, room.last_seq + 1).await;

    let mut joins = tokio::task::JoinSet::new();
    for i in 0..JOINERS {
        let mut rooms = node.rooms.clone();
        let room_id = room.id.clone();
        joins.spawn(async move { join(&mut rooms, &room_id, &format!("acc{i}")).await });
    }
    while let Some(joined) = joins.join_next().await {
        joined.expect("join task panicked");
    }
    close_room(&mut rooms, &service(), &room.id).await;

    let events = all_events(&mut stream, EVENT_TIMEOUT).await;
    let closed = get_room(&mut rooms, &service(), &room.id).await;
    let expected: Vec<u64> = (room.last_seq + 1..=closed.last_seq).collect();
    assert_eq!(seqs(&events), expected);
    assert_consistent(&events, &room.id);

    let mut joined: Vec<&str> = events
        .iter()
        .filter(|e| e.name == "participant.joined")
        .map(|e| e.account_id.as_str())
        .collect();
    joined.sort_unstable();
    let mut expected_accounts: Vec<String> = (0..JOINERS).map(|i| format!("acc{i}")).collect();
    expected_accounts.sort_unstable();
    assert_eq!(joined, expected_accounts);
    assert_eq!(event_names(&events).last(), Some(&"room.closed"));
}
