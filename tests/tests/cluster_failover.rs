//! Failover between real `roomd` processes that share one Redis server,
//! with a node TTL of 2 s:
//!
//! - The owner of 1,000 rooms dies. Every room is served through the
//!   survivors within the TTL plus 2 s, with its acknowledged changes, and
//!   later changes carry a higher ownership epoch.
//! - A room whose owner died still closes by its unused timeout, with no
//!   request touching it.
//! - An owner paused past its TTL cannot write when it resumes. The store
//!   rejects its stale writes, and it returns the new owner's state.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::{
    CloseReason, CreateRoomRequest, ParticipantStatus, Room, RoomConfigurationInput, RoomState,
};
use roomd_tests::cluster_client::{
    RetryPolicy, live_node_id, live_nodes, map_concurrently, rejected_writes, retry_unavailable,
    stored_events, stored_room, stored_room_field,
};
use roomd_tests::{
    Caller, Cluster, Fault, all_events, event_names, get_request, join_request, open_room, seqs,
    update_request, watch_events,
};
use tonic::transport::Channel;
use tonic::{Code, Status};

const ORG: &str = "clinic-failover";
/// The `--node-ttl` of every cluster here.
const NODE_TTL: Duration = Duration::from_secs(2);
/// The failover bound: every room of a dead node is served again within
/// the node TTL plus this.
const FAILOVER_MARGIN: Duration = Duration::from_secs(2);
const ROOMS_OF_DEAD_NODE: usize = 1_000;
/// Calls in flight at once while the test sets rooms up.
const SETUP_CONCURRENCY: usize = 32;
/// Time between two GetRoom calls for one room while it fails over.
const FAILOVER_POLL: Duration = Duration::from_millis(50);
/// How long the test keeps polling before it gives up, well above the
/// bound that it asserts, so that a slow failover is measured, not cut off.
const FAILOVER_GIVE_UP: Duration = Duration::from_secs(30);
/// The account that joins every room before its owner dies.
const JOINED_BEFORE: &str = "joined-before-kill";
const JOINED_AFTER: &str = "joined-after-kill";
/// How long Redis stays paused after the paused owner resumes: long enough
/// for its overdue timers to send their commits, and well below the store's
/// Redis response timeout of 2 s.
const REDIS_PAUSE_ON_RESUME: Duration = Duration::from_millis(300);

/// Makes the tests of this file run one at a time, because the failover
/// bound is measured and two clusters at once would share the cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn service() -> Caller {
    Caller::service(ORG)
}

fn to_utc(timestamp: &prost_types::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(timestamp.seconds, timestamp.nanos as u32)
        .expect("roomd sends valid timestamps")
}

fn with_unused_timeout(label: &str, seconds: u32) -> CreateRoomRequest {
    CreateRoomRequest {
        configuration: Some(RoomConfigurationInput {
            unused_timeout: Some(seconds),
            ..RoomConfigurationInput::default()
        }),
        ..open_room(label, &[])
    }
}

/// Asserts that a failed call is retryable: UNAVAILABLE, either from roomd
/// with an `unavailable.*` reason or from the transport without details.
#[track_caller]
fn assert_retryable(status: &Status, what: &str) {
    assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
    if !status.details().is_empty() {
        let fault = Fault::from_status(status);
        assert!(
            fault.reason == "unavailable.store" || fault.reason == "unavailable.owner",
            "{what}: {fault:?}"
        );
    }
}

/// Calls GetRoom for the room every [`FAILOVER_POLL`] until it succeeds,
/// and returns the reply with the time it came. Every failure before must
/// be retryable.
async fn poll_until_served(mut rooms: RoomsClient<Channel>, room_id: String) -> (Room, Instant) {
    let started = Instant::now();
    loop {
        match rooms
            .get_room(service().request(get_request(&room_id)))
            .await
        {
            Ok(reply) => return (reply.into_inner(), Instant::now()),
            Err(status) => assert_retryable(&status, &format!("GetRoom {room_id} after the kill")),
        }
        assert!(
            started.elapsed() < FAILOVER_GIVE_UP,
            "GetRoom {room_id} still failed {FAILOVER_GIVE_UP:?} after the kill"
        );
        tokio::time::sleep(FAILOVER_POLL).await;
    }
}

#[tokio::test]
async fn dead_owner_rooms_served_within_bound() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    // The first node runs alone while it gets its rooms, so that it owns
    // every one of them. The survivors join afterwards.
    let mut cluster = Cluster::builder().nodes(1).start().await;
    let mut redis = cluster.redis().client().await;
    let doomed_id = live_node_id(&mut redis, cluster.node(0)).await;
    let doomed = cluster.node(0).rooms_client().await;

    let setup_started = Instant::now();
    let created = map_concurrently(0..ROOMS_OF_DEAD_NODE, SETUP_CONCURRENCY, move |index| {
        let mut rooms = doomed.clone();
        async move {
            roomd_tests::create_room(
                &mut rooms,
                &service(),
                open_room(&format!("Room {index}"), &[]),
            )
            .await
        }
    })
    .await;
    println!(
        "created {} rooms in {:?}",
        created.len(),
        setup_started.elapsed()
    );
    let room_ids: Vec<String> = created.iter().map(|room| room.id.clone()).collect();
    for room_id in &room_ids {
        let owner = stored_room_field(&mut redis, room_id, "owner").await;
        assert_eq!(
            owner.as_deref(),
            Some(doomed_id.as_str()),
            "room {room_id} is not owned by the node that will be killed"
        );
    }

    cluster.add_node().await;
    cluster.add_node().await;
    cluster.wait_ready().await;
    let survivors = vec![
        cluster.node(1).rooms_client().await,
        cluster.node(2).rooms_client().await,
    ];
    let survivor_ids: HashSet<String> = [
        live_node_id(&mut redis, cluster.node(1)).await,
        live_node_id(&mut redis, cluster.node(2)).await,
    ]
    .into();

    // One acknowledged join per room, sent through every node in turn. The
    // survivors forward theirs to the owner.
    let all_nodes = Arc::new(vec![
        cluster.node(0).rooms_client().await,
        survivors[0].clone(),
        survivors[1].clone(),
    ]);
    let joined = map_concurrently(
        room_ids.clone().into_iter().enumerate(),
        SETUP_CONCURRENCY,
        move |(index, room_id)| {
            let mut rooms = all_nodes[index % all_nodes.len()].clone();
            async move {
                rooms
                    .join_room(service().request(join_request(&room_id, JOINED_BEFORE)))
                    .await
                    .unwrap_or_else(|status| panic!("join room {room_id}: {status:?}"))
                    .into_inner()
            }
        },
    )
    .await;
    for room in &joined {
        assert_eq!(room.last_seq, 3, "created, opened and joined: {room:?}");
    }

    let killed_at = Instant::now();
    cluster.node_mut(0).sigkill().await;

    let survivors = Arc::new(survivors);
    let served = map_concurrently(
        room_ids.clone().into_iter().enumerate(),
        ROOMS_OF_DEAD_NODE,
        {
            let survivors = survivors.clone();
            move |(index, room_id)| {
                let rooms = survivors[index % survivors.len()].clone();
                poll_until_served(rooms, room_id)
            }
        },
    )
    .await;
    let last_answer = served
        .iter()
        .map(|(_, answered_at)| *answered_at)
        .max()
        .expect("rooms were polled");
    let failover_time = last_answer - killed_at;
    println!(
        "all {} rooms were served through the survivors {failover_time:?} after the kill",
        served.len()
    );

    for ((room, _), acknowledged) in served.iter().zip(&joined) {
        assert_eq!(room.id, acknowledged.id);
        assert_eq!(
            room.version, acknowledged.version,
            "room {} lost an acknowledged change",
            room.id
        );
        let participants: Vec<(&str, i32)> = room
            .participants
            .iter()
            .map(|participant| (participant.account.as_str(), participant.status))
            .collect();
        assert_eq!(
            participants,
            [(JOINED_BEFORE, ParticipantStatus::Connected as i32)],
            "participants of room {}",
            room.id
        );
    }
    assert!(
        failover_time <= NODE_TTL + FAILOVER_MARGIN,
        "the last of {ROOMS_OF_DEAD_NODE} rooms was served {failover_time:?} after the kill, \
         above the bound of {:?}\n{}",
        NODE_TTL + FAILOVER_MARGIN,
        cluster.logs()
    );

    // A change after the failover is committed under the new owner's epoch.
    map_concurrently(
        room_ids.clone().into_iter().enumerate(),
        SETUP_CONCURRENCY,
        {
            let survivors = survivors.clone();
            move |(index, room_id)| {
                let mut rooms = survivors[index % survivors.len()].clone();
                async move {
                    rooms
                        .join_room(service().request(join_request(&room_id, JOINED_AFTER)))
                        .await
                        .unwrap_or_else(|status| {
                            panic!("join room {room_id} after the kill: {status:?}")
                        })
                }
            }
        },
    )
    .await;
    for room_id in &room_ids {
        let stored = stored_room(&mut redis, room_id)
            .await
            .expect("the room is stored");
        assert!(
            survivor_ids.contains(&stored.owner),
            "room {room_id} is owned by {:?}, not by a survivor {survivor_ids:?}",
            stored.owner
        );
        assert!(stored.epoch >= 2, "room {room_id} epoch {}", stored.epoch);

        let events = stored_events(&mut redis, room_id).await;
        let summary: Vec<(u64, String, u64)> = events
            .iter()
            .map(|event| (event.seq, event.name.to_string(), event.epoch))
            .collect();
        assert_eq!(
            summary
                .iter()
                .map(|(seq, name, _)| (*seq, name.as_str()))
                .collect::<Vec<_>>(),
            [
                (1, "room.created"),
                (2, "room.opened"),
                (3, "participant.joined"),
                (4, "participant.joined"),
            ],
            "event log of room {room_id}"
        );
        assert!(
            summary[..3].iter().all(|(_, _, epoch)| *epoch == 1),
            "events before the kill of room {room_id}: {summary:?}"
        );
        assert_eq!(
            summary[3].2, stored.epoch,
            "the join after the kill of room {room_id} carries the new owner's epoch"
        );
    }

    // The public log shows the same through a watch.
    let mut rooms = survivors[0].clone();
    for room_id in room_ids.iter().take(5) {
        let mut watch = watch_events(&mut rooms, &service(), room_id, 1).await;
        let events = roomd_tests::next_events(&mut watch, 4, Duration::from_secs(5)).await;
        assert_eq!(seqs(&events), [1, 2, 3, 4]);
        assert!(
            events[3].epoch > events[2].epoch,
            "watched epochs of room {room_id}: {events:?}"
        );
    }
}

#[tokio::test]
async fn orphaned_room_unused_timeout_fires() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    const UNUSED_TIMEOUT_SECS: u32 = 3;
    let mut cluster = Cluster::start(3).await;
    let mut redis = cluster.redis().client().await;
    let owner_id = live_node_id(&mut redis, cluster.node(0)).await;
    let mut owner = cluster.node(0).rooms_client().await;

    let created = roomd_tests::create_room(
        &mut owner,
        &service(),
        with_unused_timeout("Nobody comes", UNUSED_TIMEOUT_SECS),
    )
    .await;
    let room_id = created.id.clone();
    cluster.node_mut(0).sigkill().await;

    let stored_owner = stored_room_field(&mut redis, &room_id, "owner").await;
    assert_eq!(stored_owner.as_deref(), Some(owner_id.as_str()));
    let deadline = to_utc(
        created
            .deadlines
            .as_ref()
            .and_then(|deadlines| deadlines.unused.as_ref())
            .expect("an open room has an unused deadline"),
    );
    let bound = deadline
        + chrono::Duration::from_std(NODE_TTL + FAILOVER_MARGIN).expect("a small duration");

    // Only Redis is read while waiting, so no request makes a node claim
    // the room. The survivors must find and adopt it by themselves.
    let closed_seen_at = roomd_tests::eventually(
        Duration::from_secs(20),
        Duration::from_millis(50),
        async || match stored_room_field(&mut redis, &room_id, "state").await {
            Some(state) if state == "closed" => Ok(Utc::now()),
            state => Err(format!("room {room_id} is {state:?}")),
        },
    )
    .await;
    assert!(
        closed_seen_at <= bound,
        "the room closed at {closed_seen_at}, after the deadline {deadline} plus {:?}\n{}",
        NODE_TTL + FAILOVER_MARGIN,
        cluster.logs()
    );

    let mut survivor = cluster.node(1).rooms_client().await;
    let closed = roomd_tests::get_room(&mut survivor, &service(), &room_id).await;
    assert_eq!(closed.state, RoomState::Closed as i32);
    assert_eq!(closed.close_reason, CloseReason::UnusedTimeout as i32);
    let closed_at = to_utc(
        closed
            .closed_at
            .as_ref()
            .expect("a closed room has closedAt"),
    );
    assert!(
        closed_at >= deadline,
        "closed at {closed_at}, before the deadline {deadline}"
    );
    assert!(closed_at <= bound, "closed at {closed_at}, after {bound}");

    let mut watch = watch_events(&mut survivor, &service(), &room_id, 1).await;
    let events = all_events(&mut watch, Duration::from_secs(5)).await;
    assert_eq!(
        event_names(&events),
        ["room.created", "room.opened", "room.closed"],
        "{events:?}"
    );
    assert_eq!(seqs(&events), [1, 2, 3]);
    assert_eq!(events[2].reason, "unused_timeout");
    assert_eq!(events[0].epoch, 1);
    assert!(
        events[2].epoch >= 2,
        "the close was committed by the adopting node: {events:?}"
    );
}

/// Rooms of the node that the test pauses.
struct PausedOwnerRooms {
    /// Open rooms whose labels change through another node while the owner
    /// is paused.
    updated: Vec<Room>,
    /// Rooms whose unused timeout passes while the owner is paused, so that
    /// its actors try to close them when it resumes.
    timed: Vec<Room>,
}

#[tokio::test]
async fn paused_owner_cannot_write_after_resume() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    const TIMED_UNUSED_SECS: u32 = 3;
    const ROOMS_PER_KIND: usize = 4;
    let mut cluster = Cluster::start(3).await;
    let mut redis = cluster.redis().client().await;
    let paused_id = live_node_id(&mut redis, cluster.node(0)).await;
    let mut paused = cluster.node(0).rooms_client().await;
    let mut other = cluster.node(1).rooms_client().await;

    let mut rooms = PausedOwnerRooms {
        updated: Vec::new(),
        timed: Vec::new(),
    };
    for index in 0..ROOMS_PER_KIND {
        let label = format!("Updated elsewhere {index}");
        rooms
            .updated
            .push(roomd_tests::create_room(&mut paused, &service(), open_room(&label, &[])).await);
        let label = format!("Times out {index}");
        let request = with_unused_timeout(&label, TIMED_UNUSED_SECS);
        rooms
            .timed
            .push(roomd_tests::create_room(&mut paused, &service(), request).await);
    }
    for room in rooms.updated.iter().chain(&rooms.timed) {
        let owner = stored_room_field(&mut redis, &room.id, "owner").await;
        assert_eq!(
            owner.as_deref(),
            Some(paused_id.as_str()),
            "owner of {}",
            room.id
        );
    }
    let rejected_before = rejected_writes(&mut redis).await;

    cluster.node_mut(0).sigstop();
    // A request sent to the paused node waits in its socket until it
    // resumes.
    let stale_room_id = rooms.updated[0].id.clone();
    let stale_update = {
        let mut paused = paused.clone();
        let request = service().request(update_request(
            &stale_room_id,
            r#"{"$set":{"label":"Sent to the paused node"}}"#,
        ));
        tokio::spawn(async move { paused.update_room(request).await })
    };
    tokio::time::sleep(NODE_TTL + Duration::from_millis(1_500)).await;

    // The other nodes have taken the rooms over by now, or do so on these
    // requests.
    let policy = RetryPolicy::default();
    let mut updated_elsewhere = Vec::new();
    for room in &rooms.updated {
        let label = format!("{} (changed while the owner was paused)", room.label);
        let update = format!(r#"{{"$set":{{"label":"{label}"}}}}"#);
        let retried = retry_unavailable(&policy, |_| {
            let request = service().request(update_request(&room.id, &update));
            let mut other = other.clone();
            async move { other.update_room(request).await }
        })
        .await;
        let room = retried.result.unwrap_or_else(|status| {
            panic!(
                "update of {} through another node: {status:?}\n{}",
                room.id,
                cluster.logs()
            )
        });
        assert_eq!(room.label, label);
        updated_elsewhere.push(room);
    }
    for room in &rooms.timed {
        roomd_tests::eventually(
            Duration::from_secs(10),
            Duration::from_millis(50),
            async || match stored_room_field(&mut redis, &room.id, "state").await {
                Some(state) if state == "closed" => Ok(()),
                state => Err(format!("timed room {} is {state:?}", room.id)),
            },
        )
        .await;
    }

    // On resume, the node's stale actors commit their overdue timers, and
    // its heartbeat learns that the node was declared dead and stops them.
    // Which comes first inside the node is a race. Redis is paused while
    // the node resumes, so every commit sent before the heartbeat's reply
    // reaches the store, which must reject it.
    cluster.redis_mut().sigstop();
    cluster.node_mut(0).sigcont();
    tokio::time::sleep(REDIS_PAUSE_ON_RESUME).await;
    cluster.redis_mut().sigcont();
    let rejected_after = roomd_tests::eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            let rejected = rejected_writes(&mut redis).await;
            if rejected > rejected_before {
                Ok(rejected)
            } else {
                Err(format!(
                    "roomd:stats:rejected is still {rejected} after the resume"
                ))
            }
        },
    )
    .await;
    println!(
        "stale writes rejected by the store: {}",
        rejected_after - rejected_before
    );

    let stale_update = tokio::time::timeout(Duration::from_secs(30), stale_update)
        .await
        .expect("the request sent to the paused node is answered after it resumes")
        .expect("the request task did not panic");
    match &stale_update {
        Ok(reply) => println!(
            "the update sent to the paused node was applied at version {}",
            reply.get_ref().version
        ),
        Err(status) => println!(
            "the update sent to the paused node failed: {:?} {}",
            status.code(),
            status.message()
        ),
    }

    // The resumed node rejoins under a fresh id.
    roomd_tests::eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            let live = live_nodes(&mut redis).await;
            let address = cluster.node(0).internal_address().to_string();
            match live.iter().find(|(_, advertised)| **advertised == address) {
                Some((id, _)) if *id != paused_id => Ok(()),
                found => Err(format!("live node at {address}: {found:?}")),
            }
        },
    )
    .await;

    // The store holds only the changes made through the other node, and
    // the request sent to the paused node if it was acknowledged. Of two
    // acknowledged changes of one room, the one with the higher version is
    // stored, and they never share a version.
    for (created, updated) in rooms.updated.iter().zip(&updated_elsewhere) {
        let expected = match (created.id == stale_room_id, &stale_update) {
            (true, Ok(reply)) => {
                let stale = reply.get_ref();
                assert_ne!(
                    stale.version, updated.version,
                    "two acknowledged changes of {} have the same version: {stale:?} and {updated:?}",
                    created.id
                );
                if stale.version > updated.version {
                    stale
                } else {
                    updated
                }
            }
            (true, Err(status)) => {
                assert_retryable(status, "the update sent to the paused node");
                updated
            }
            (false, _) => updated,
        };
        let stored = stored_room(&mut redis, &created.id)
            .await
            .expect("the room is stored");
        assert_eq!(stored.room.label, expected.label, "label of {}", created.id);
        assert_eq!(
            stored.version, expected.version,
            "version of {}",
            created.id
        );
        assert_ne!(stored.owner, paused_id, "owner of {}", created.id);
        assert!(
            stored.epoch >= 2,
            "epoch of {}: {}",
            created.id,
            stored.epoch
        );

        let events = stored_events(&mut redis, &created.id).await;
        let expected_seqs: Vec<u64> = (1..=events.len() as u64).collect();
        assert_eq!(
            events.iter().map(|event| event.seq).collect::<Vec<_>>(),
            expected_seqs
        );
        // Only a change acknowledged before the pause may carry epoch 1.
        let acknowledged_before_pause = match (created.id == stale_room_id, &stale_update) {
            (true, Ok(reply)) if reply.get_ref().version < updated.version => {
                reply.get_ref().version
            }
            _ => created.version,
        };
        for event in &events {
            assert!(
                event.version <= acknowledged_before_pause || event.epoch >= 2,
                "room {} has a change committed under the paused node's epoch: {events:?}",
                created.id
            );
        }
    }
    for room in &rooms.timed {
        let stored = stored_room(&mut redis, &room.id)
            .await
            .expect("the room is stored");
        assert_eq!(stored.state, "closed");
        let events = stored_events(&mut redis, &room.id).await;
        let names: Vec<String> = events.iter().map(|event| event.name.to_string()).collect();
        assert_eq!(
            names,
            ["room.created", "room.opened", "room.closed"],
            "event log of timed room {}: {events:?}",
            room.id
        );
        assert!(
            events[2].epoch >= 2,
            "timed room {} was closed under the paused node's epoch: {events:?}",
            room.id
        );
        assert_eq!(events[2].reason.as_deref(), Some("unused_timeout"));
    }

    // The resumed node returns the state that the other nodes return.
    for room in rooms.updated.iter().chain(&rooms.timed) {
        let through_paused = retry_unavailable(&policy, |_| {
            let mut paused = paused.clone();
            let request = service().request(get_request(&room.id));
            async move { paused.get_room(request).await }
        })
        .await
        .result
        .unwrap_or_else(|status| {
            panic!("GetRoom {} through the resumed node: {status:?}", room.id)
        });
        let through_other = roomd_tests::get_room(&mut other, &service(), &room.id).await;
        assert_eq!(through_paused, through_other, "room {}", room.id);
    }

    // A change sent to the resumed node is applied once, by the owner.
    let room_id = rooms.updated[1].id.clone();
    let changed = retry_unavailable(&policy, |_| {
        let mut paused = paused.clone();
        let request = service().request(update_request(
            &room_id,
            r#"{"$set":{"label":"Changed through the resumed node"}}"#,
        ));
        async move { paused.update_room(request).await }
    })
    .await
    .result
    .unwrap_or_else(|status| panic!("update through the resumed node: {status:?}"));
    let read = roomd_tests::get_room(&mut other, &service(), &room_id).await;
    assert_eq!(read.label, "Changed through the resumed node");
    assert_eq!(read.version, changed.version);
}
