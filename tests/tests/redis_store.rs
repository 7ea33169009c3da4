//! Contract tests of `RedisStore` against a real `redis-server` on a free
//! loopback port: rooms, ownership and fencing, the open-room limit, event
//! subscriptions across a Redis restart, the node directory, corrupt data,
//! and failures while Redis is down.
//!
//! The tests read and write some keys directly, by the layout that the
//! store's module documentation describes (prefix `roomd`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use redis::aio::MultiplexedConnection;
use roomd_model::filter::SortOrder;
use roomd_model::{
    Event, Filter, NewRoom, Principal, Room, RoomDefaults, RoomDefinition, RoomId, SortField,
};
use roomd_store::{
    Claimed, Created, Lease, Location, NodeDirectory, NodeId, NodeInfo, NodeStatus, RedisConfig,
    RedisStore, RoomQuery, Store, StoreError,
};
use roomd_tests::{RedisServer, eventually};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

const ORG: &str = "clinic1";
/// How long a call may take while Redis is down: the store's response
/// timeout is 2 s, so this leaves room for a slow test machine.
const DOWN_CALL_LIMIT: Duration = Duration::from_secs(4);
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

async fn start() -> (RedisServer, RedisStore) {
    let server = RedisServer::spawn().await;
    let store = connect(&server).await;
    (server, store)
}

async fn connect(server: &RedisServer) -> RedisStore {
    RedisStore::connect(RedisConfig::new(server.url()))
        .await
        .unwrap_or_else(|e| panic!("cannot connect the store to {}: {e}", server.url()))
}

fn node(name: &str) -> NodeId {
    NodeId::from_stored(name)
}

fn first_lease(name: &str) -> Lease {
    Lease::first(node(name))
}

fn new_room_of(org: &str, principal: &Principal) -> (Room, Vec<Event>) {
    let request = NewRoom {
        label: "Visit".into(),
        ..NewRoom::default()
    };
    Room::create(
        RoomId::generate(),
        org,
        request,
        &RoomDefinition::implicit(org),
        &RoomDefaults::default(),
        &roomd_model::Limits::default(),
        principal,
        Utc::now(),
    )
    .expect("a valid room")
}

fn new_room() -> (Room, Vec<Event>) {
    new_room_of(ORG, &Principal::Service)
}

/// Creates a room owned by `owner` under epoch 1.
async fn create(store: &RedisStore, owner: &str) -> Room {
    let (room, events) = new_room();
    let created = store
        .create_room(&room, &events, None, &first_lease(owner), None)
        .await
        .expect("create the room");
    assert_eq!(created, Created::New);
    room
}

/// Opens the room and commits it under `lease`.
async fn open(store: &RedisStore, room: &mut Room, lease: &Lease) -> Vec<Event> {
    let version = room.version;
    let events = room.open(Utc::now()).expect("open the room");
    store
        .commit(room, &events, version, lease)
        .await
        .expect("commit the opened room");
    events
}

/// Closes the room and commits it under `lease`.
async fn close(store: &RedisStore, room: &mut Room, lease: &Lease) -> Vec<Event> {
    let version = room.version;
    let events = room
        .close(&Principal::Service, Utc::now())
        .expect("close the room");
    store
        .commit(room, &events, version, lease)
        .await
        .expect("commit the closed room");
    events
}

fn room_key(room_id: RoomId) -> String {
    format!("roomd:room:{{{room_id}}}")
}

fn events_key(room_id: RoomId) -> String {
    format!("roomd:events:{{{room_id}}}")
}

fn channel(room_id: RoomId) -> String {
    format!("roomd:room-events:{{{room_id}}}")
}

async fn smembers(redis: &mut MultiplexedConnection, key: &str) -> Vec<String> {
    let mut members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(key)
        .query_async(redis)
        .await
        .unwrap();
    members.sort();
    members
}

async fn exists(redis: &mut MultiplexedConnection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<u64>(redis)
        .await
        .unwrap()
        == 1
}

async fn deadline_of(redis: &mut MultiplexedConnection, room_id: RoomId) -> Option<i64> {
    redis::cmd("ZSCORE")
        .arg("roomd:deadlines")
        .arg(room_id.to_string())
        .query_async::<Option<f64>>(redis)
        .await
        .unwrap()
        .map(|score| score as i64)
}

async fn rejected_count(store: &RedisStore, redis: &mut MultiplexedConnection) -> u64 {
    redis::cmd("GET")
        .arg(store.rejected_commits_key())
        .query_async::<Option<u64>>(redis)
        .await
        .unwrap()
        .unwrap_or(0)
}

/// Waits until the store's pub/sub connection has subscribed to the room's
/// channel, so that a commit from now on is published to it.
async fn wait_until_subscribed(server: &RedisServer, room_id: RoomId) {
    eventually(WAIT, POLL, async || {
        let mut redis = server.client().await;
        let (_, count): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel(room_id))
            .query_async(&mut redis)
            .await
            .map_err(|e| e.to_string())?;
        (count == 1)
            .then_some(())
            .ok_or_else(|| format!("{count} subscribers"))
    })
    .await;
}

/// Receives the next event with a `seq` of at least `min_seq`. The store
/// re-sends a room's last stored event once a subscription is in place, so
/// older events may come first.
async fn next_event_from(receiver: &mut Receiver<Event>, min_seq: u64) -> Event {
    loop {
        let event = tokio::time::timeout(WAIT, receiver.recv())
            .await
            .expect("an event within 10 s")
            .expect("an open subscription");
        if event.seq >= min_seq {
            return event;
        }
    }
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|event| event.seq).collect()
}

#[tokio::test]
async fn create_then_load_and_locate() {
    let (server, store) = start().await;
    let mut redis = server.client().await;
    let (room, events) = new_room();
    let lease = first_lease("node-a");

    let created = store
        .create_room(&room, &events, None, &lease, None)
        .await
        .unwrap();
    assert_eq!(created, Created::New);

    assert_eq!(
        store.load_room(ORG, room.id).await.unwrap(),
        Some(room.clone())
    );
    assert_eq!(store.load_room("clinic2", room.id).await.unwrap(), None);
    assert_eq!(
        store.load_room(ORG, RoomId::generate()).await.unwrap(),
        None
    );

    let location = store.locate(room.id).await.unwrap();
    let expected = Location {
        org: ORG.into(),
        owner: Some(node("node-a")),
        epoch: 1,
        closed: false,
    };
    assert_eq!(location, Some(expected));
    assert_eq!(store.locate(RoomId::generate()).await.unwrap(), None);

    let id = room.id.to_string();
    assert_eq!(
        smembers(&mut redis, "roomd:org:clinic1:rooms").await,
        vec![id.clone()]
    );
    assert_eq!(
        smembers(&mut redis, "roomd:org:clinic1:open").await,
        vec![id.clone()]
    );
    assert_eq!(
        smembers(&mut redis, "roomd:node:node-a:rooms").await,
        vec![id.clone()]
    );
    let next_deadline = room.next_deadline().unwrap().0.timestamp_millis();
    assert_eq!(deadline_of(&mut redis, room.id).await, Some(next_deadline));

    let log = store.read_events(ORG, room.id, 1, 100).await.unwrap();
    assert_eq!(log, events);
}

#[tokio::test]
async fn create_is_idempotent_by_request_id() {
    let (server, store) = start().await;
    let mut redis = server.client().await;
    let lease = first_lease("node-a");
    let (first, events) = new_room();
    store
        .create_room(&first, &events, Some("req-1"), &lease, None)
        .await
        .unwrap();

    let (second, second_events) = new_room();
    let outcome = store
        .create_room(&second, &second_events, Some("req-1"), &lease, None)
        .await
        .unwrap();
    assert_eq!(outcome, Created::Existing(Box::new(first.clone())));
    assert_eq!(store.load_room(ORG, second.id).await.unwrap(), None);
    assert_eq!(
        smembers(&mut redis, "roomd:org:clinic1:rooms").await,
        vec![first.id.to_string()]
    );

    // The same request id in another org is another request.
    let (other_org, other_events) = new_room_of("clinic2", &Principal::Service);
    let outcome = store
        .create_room(&other_org, &other_events, Some("req-1"), &lease, None)
        .await
        .unwrap();
    assert_eq!(outcome, Created::New);
}

#[tokio::test]
async fn retried_create_keeps_one_log() {
    let (_server, store) = start().await;
    let lease = first_lease("node-a");
    let (room, events) = new_room();
    store
        .create_room(&room, &events, None, &lease, None)
        .await
        .unwrap();

    let outcome = store
        .create_room(&room, &events, None, &lease, None)
        .await
        .unwrap();
    assert_eq!(outcome, Created::Existing(Box::new(room.clone())));
    let log = store.read_events(ORG, room.id, 1, 100).await.unwrap();
    assert_eq!(log, events);
}

#[tokio::test]
async fn commit_applies_and_publishes() {
    let (server, store) = start().await;
    let mut redis = server.client().await;
    let lease = first_lease("node-a");
    let mut room = create(&store, "node-a").await;
    let mut receiver = store.subscribe(room.id);
    wait_until_subscribed(&server, room.id).await;

    let opened = open(&store, &mut room, &lease).await;
    assert_eq!(seqs(&opened), vec![2]);

    let received = next_event_from(&mut receiver, 2).await;
    assert_eq!(received, opened[0]);
    assert_eq!(
        store.load_room(ORG, room.id).await.unwrap(),
        Some(room.clone())
    );
    let log = store.read_events(ORG, room.id, 1, 100).await.unwrap();
    assert_eq!(seqs(&log), vec![1, 2]);

    let next_deadline = room.next_deadline().map(|(at, _)| at.timestamp_millis());
    assert_eq!(deadline_of(&mut redis, room.id).await, next_deadline);
}

#[tokio::test]
async fn commit_with_stale_epoch_is_fenced() {
    let (server, store) = start().await;
    let mut redis = server.client().await;
    let mut room = create(&store, "node-a").await;
    let before = store.load_room(ORG, room.id).await.unwrap();
    let rejected_before = rejected_count(&store, &mut redis).await;

    let stale = Lease {
        node: node("node-a"),
        epoch: 2,
    };
    let version = room.version;
    let events = room.open(Utc::now()).unwrap();
    let error = store
        .commit(&room, &events, version, &stale)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        StoreError::Fenced {
            room_id: room.id.to_string()
        }
    );

    let other_node = first_lease("node-b");
    let error = store
        .commit(&room, &events, version, &other_node)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Fenced { .. }), "{error:?}");

    assert_eq!(
        rejected_count(&store, &mut redis).await,
        rejected_before + 2
    );
    assert_eq!(store.load_room(ORG, room.id).await.unwrap(), before);
    let log = store.read_events(ORG, room.id, 1, 100).await.unwrap();
    assert_eq!(seqs(&log), vec![1]);
}

#[tokio::test]
async fn commit_at_wrong_version_is_rejected() {
    let (server, store) = start().await;
    let mut redis = server.client().await;
    let lease = first_lease("node-a");
    let mut room = create(&store, "node-a").await;
    let events = room.open(Utc::now()).unwrap();

    let error = store.commit(&room, &events, 5, &lease).await.unwrap_err();
    assert_eq!(
        error,
        StoreError::VersionMismatch {
            room_id: room.id.to_string(),
            expected: 5,
            actual: 1,
        }
    );
    assert_eq!(rejected_count(&store, &mut redis).await, 0);
    let log = store.read_events(ORG, room.id, 1, 100).await.unwrap();
    assert_eq!(seqs(&log), vec![1]);
}

#[tokio::test]
async fn commit_to_missing_room_is_rejected() {
    let (_server, store) = start().await;
    let lease = first_lease("node-a");
    let (room, _) = new_room();
    let error = store.commit(&room, &[], 1, &lease).await.unwrap_err();
    assert_eq!(error, StoreError::RoomMissing(room.id.to_string()));

    // A room of another org is missing for this org's writer.
    let stored = create(&store, "node-a").await;
    let mut foreign = stored.clone();
    foreign.org = "clinic2".into();
    let error = store.commit(&foreign, &[], 1, &lease).await.unwrap_err();
    assert_eq!(error, StoreError::RoomMissing(stored.id.to_string()));
}

#[tokio::test]
async fn close_leaves_owner_and_indexes() {
    let (server, store) = start().await;
    let mut redis = server.client().await;
    let lease = first_lease("node-a");
    let mut room = create(&store, "node-a").await;
    open(&store, &mut room, &lease).await;
    let closed = close(&store, &mut room, &lease).await;
    assert!(closed.last().unwrap().is_terminal());

    let location = store.locate(room.id).await.unwrap().unwrap();
    assert_eq!(location.owner, None);
    assert!(location.closed);
    assert!(
        smembers(&mut redis, "roomd:node:node-a:rooms")
            .await
            .is_empty()
    );
    assert!(
        smembers(&mut redis, "roomd:org:clinic1:open")
            .await
            .is_empty()
    );
    assert_eq!(deadline_of(&mut redis, room.id).await, None);
    assert_eq!(
        smembers(&mut redis, "roomd:org:clinic1:rooms").await,
        vec![room.id.to_string()]
    );

    // The closed room has no owner, so the old lease cannot write it.
    let error = store
        .commit(&room, &[], room.version, &lease)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Fenced { .. }), "{error:?}");
}

#[tokio::test]
async fn claim_with_current_location_wins() {
    let (server, store) = start().await;
    let mut redis = server.client().await;
    let lease_a = first_lease("node-a");
    let mut room = create(&store, "node-a").await;
    let seen = store.locate(room.id).await.unwrap().unwrap();

    let claimed = store
        .claim_room(room.id, &seen, &node("node-b"))
        .await
        .unwrap();
    let lease_b = Lease {
        node: node("node-b"),
        epoch: 2,
    };
    assert_eq!(
        claimed,
        Claimed::Won(Box::new(room.clone()), lease_b.clone())
    );

    let location = store.locate(room.id).await.unwrap().unwrap();
    assert_eq!(location.owner, Some(node("node-b")));
    assert_eq!(location.epoch, 2);
    assert!(
        smembers(&mut redis, "roomd:node:node-a:rooms")
            .await
            .is_empty()
    );
    assert_eq!(
        smembers(&mut redis, "roomd:node:node-b:rooms").await,
        vec![room.id.to_string()]
    );

    // The previous owner is fenced, the new one writes.
    let version = room.version;
    let events = room.open(Utc::now()).unwrap();
    let error = store
        .commit(&room, &events, version, &lease_a)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Fenced { .. }), "{error:?}");
    store
        .commit(&room, &events, version, &lease_b)
        .await
        .unwrap();
}

#[tokio::test]
async fn claim_with_stale_location_loses() {
    let (_server, store) = start().await;
    let lease = first_lease("node-a");
    let room = create(&store, "node-a").await;
    let seen = store.locate(room.id).await.unwrap().unwrap();
    let won = store
        .claim_room(room.id, &seen, &node("node-b"))
        .await
        .unwrap();
    assert!(matches!(won, Claimed::Won(..)));

    let late = store
        .claim_room(room.id, &seen, &node("node-c"))
        .await
        .unwrap();
    assert_eq!(late, Claimed::Lost);
    let location = store.locate(room.id).await.unwrap().unwrap();
    assert_eq!(location.owner, Some(node("node-b")));

    let mut wrong_org = location.clone();
    wrong_org.org = "clinic2".into();
    let lost = store
        .claim_room(room.id, &wrong_org, &node("node-c"))
        .await
        .unwrap();
    assert_eq!(lost, Claimed::Lost);

    let missing = store
        .claim_room(RoomId::generate(), &location, &node("node-c"))
        .await
        .unwrap();
    assert_eq!(missing, Claimed::Lost);

    // A closed room is never claimed.
    let mut other = create(&store, "node-a").await;
    close(&store, &mut other, &lease).await;
    let closed = store.locate(other.id).await.unwrap().unwrap();
    let lost = store
        .claim_room(other.id, &closed, &node("node-c"))
        .await
        .unwrap();
    assert_eq!(lost, Claimed::Lost);
}

#[tokio::test]
async fn released_room_is_claimed_from_none() {
    let (server, store) = start().await;
    let mut redis = server.client().await;
    let lease = first_lease("node-a");
    let room = create(&store, "node-a").await;

    store.release_room(room.id, &lease).await.unwrap();
    let seen = store.locate(room.id).await.unwrap().unwrap();
    assert_eq!(seen.owner, None);
    assert_eq!(seen.epoch, 1);
    assert!(!seen.closed);
    assert!(
        smembers(&mut redis, "roomd:node:node-a:rooms")
            .await
            .is_empty()
    );
    assert_eq!(store.owned_rooms(None, 10).await.unwrap(), vec![room.id]);

    // The releasing node holds no lease any more.
    let rejected_before = rejected_count(&store, &mut redis).await;
    let error = store.release_room(room.id, &lease).await.unwrap_err();
    assert!(matches!(error, StoreError::Fenced { .. }), "{error:?}");
    assert_eq!(
        rejected_count(&store, &mut redis).await,
        rejected_before + 1
    );

    let claimed = store
        .claim_room(room.id, &seen, &node("node-b"))
        .await
        .unwrap();
    let Claimed::Won(_, lease_b) = claimed else {
        panic!("the claim of a released room was lost");
    };
    assert_eq!(lease_b.epoch, 2);
    assert!(store.owned_rooms(None, 10).await.unwrap().is_empty());
    assert_eq!(
        store.owned_rooms(Some(&node("node-b")), 10).await.unwrap(),
        vec![room.id]
    );

    let error = store
        .release_room(RoomId::generate(), &lease_b)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::RoomMissing(_)), "{error:?}");
}

#[tokio::test]
async fn delete_open_room_with_lease() {
    let (server, store) = start().await;
    let mut redis = server.client().await;
    let lease = first_lease("node-a");
    let (mut room, events) = new_room();
    store
        .create_room(&room, &events, Some("req-1"), &lease, None)
        .await
        .unwrap();
    open(&store, &mut room, &lease).await;
    let mut receiver = store.subscribe(room.id);
    wait_until_subscribed(&server, room.id).await;

    let version = room.version;
    let deleted = room.delete(&Principal::Service, Utc::now()).unwrap();
    let error = store
        .delete_room(&room, &deleted, version, None)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Fenced { .. }), "{error:?}");
    store
        .delete_room(&room, &deleted, version, Some(&lease))
        .await
        .unwrap();

    let last = next_event_from(&mut receiver, deleted[0].seq).await;
    assert_eq!(last, deleted[0]);
    assert_eq!(store.load_room(ORG, room.id).await.unwrap(), None);
    assert_eq!(store.locate(room.id).await.unwrap(), None);
    let error = store.read_events(ORG, room.id, 1, 10).await.unwrap_err();
    assert_eq!(error, StoreError::RoomMissing(room.id.to_string()));
    assert!(!exists(&mut redis, &room_key(room.id)).await);
    assert!(!exists(&mut redis, &events_key(room.id)).await);
    assert!(!exists(&mut redis, "roomd:org:clinic1:request:req-1").await);
    assert!(
        smembers(&mut redis, "roomd:org:clinic1:rooms")
            .await
            .is_empty()
    );
    assert!(
        smembers(&mut redis, "roomd:org:clinic1:open")
            .await
            .is_empty()
    );
    assert!(
        smembers(&mut redis, "roomd:node:node-a:rooms")
            .await
            .is_empty()
    );
    assert_eq!(deadline_of(&mut redis, room.id).await, None);

    // The request id is free again.
    let (again, again_events) = new_room();
    let outcome = store
        .create_room(&again, &again_events, Some("req-1"), &lease, None)
        .await
        .unwrap();
    assert_eq!(outcome, Created::New);
}

#[tokio::test]
async fn delete_closed_room_without_lease() {
    let (server, store) = start().await;
    let mut redis = server.client().await;
    let lease = first_lease("node-a");
    let mut room = create(&store, "node-a").await;
    close(&store, &mut room, &lease).await;

    let error = store
        .delete_room(&room, &[], room.version + 1, None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::VersionMismatch { .. }),
        "{error:?}"
    );
    let error = store
        .delete_room(&room, &[], room.version, Some(&lease))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Fenced { .. }), "{error:?}");

    store
        .delete_room(&room, &[], room.version, None)
        .await
        .unwrap();
    assert_eq!(store.load_room(ORG, room.id).await.unwrap(), None);
    assert!(!exists(&mut redis, &events_key(room.id)).await);
    assert!(
        smembers(&mut redis, "roomd:org:clinic1:rooms")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn open_room_limit_at_and_over() {
    let (server, store) = start().await;
    let mut redis = server.client().await;
    let lease = first_lease("node-a");
    let mut rooms = Vec::new();
    for _ in 0..2 {
        let (room, events) = new_room();
        let outcome = store
            .create_room(&room, &events, None, &lease, Some(2))
            .await
            .unwrap();
        assert_eq!(outcome, Created::New);
        rooms.push(room);
    }

    let (over, over_events) = new_room();
    let error = store
        .create_room(&over, &over_events, Some("req-over"), &lease, Some(2))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        StoreError::OpenRoomLimit {
            org: ORG.into(),
            max: 2
        }
    );
    assert_eq!(store.load_room(ORG, over.id).await.unwrap(), None);
    assert!(!exists(&mut redis, "roomd:org:clinic1:request:req-over").await);
    assert_eq!(
        smembers(&mut redis, "roomd:org:clinic1:rooms").await.len(),
        2
    );

    // A closed room no longer counts.
    close(&store, &mut rooms[0], &lease).await;
    let outcome = store
        .create_room(&over, &over_events, None, &lease, Some(2))
        .await
        .unwrap();
    assert_eq!(outcome, Created::New);
}

#[tokio::test]
async fn open_room_limit_holds_under_concurrency() {
    let (_server, store) = start().await;
    let store = Arc::new(store);
    let creates = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            let (room, events) = new_room();
            store
                .create_room(&room, &events, None, &first_lease("node-a"), Some(5))
                .await
        })
    });
    let outcomes = join_all_tasks(creates).await;

    let created = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Ok(Created::New)))
        .count();
    let limited = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Err(StoreError::OpenRoomLimit { max: 5, .. })))
        .count();
    assert_eq!(created, 5, "{outcomes:?}");
    assert_eq!(limited, 15, "{outcomes:?}");
}

async fn join_all_tasks<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut outcomes = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        outcomes.push(handle.await.expect("the task does not panic"));
    }
    outcomes
}

fn query<'a>(
    principal: &'a Principal,
    filter: &'a Filter,
    order: &'a SortOrder,
    offset: usize,
    limit: usize,
) -> RoomQuery<'a> {
    RoomQuery {
        org: ORG,
        principal,
        filter,
        order,
        offset,
        limit,
    }
}

#[tokio::test]
async fn find_rooms_filters_sorts_and_pages() {
    let (_server, store) = start().await;
    let lease = first_lease("node-a");
    let alice = Principal::account("alice");
    let bob = Principal::account("bob");
    let mut alice_rooms = Vec::new();
    for _ in 0..3 {
        let (room, events) = new_room_of(ORG, &alice);
        store
            .create_room(&room, &events, None, &lease, None)
            .await
            .unwrap();
        alice_rooms.push(room);
    }
    for _ in 0..2 {
        let (room, events) = new_room_of(ORG, &bob);
        store
            .create_room(&room, &events, None, &lease, None)
            .await
            .unwrap();
    }
    let (elsewhere, events) = new_room_of("clinic2", &alice);
    store
        .create_room(&elsewhere, &events, None, &lease, None)
        .await
        .unwrap();
    open(&store, &mut alice_rooms[1], &lease).await;

    let definition = RoomDefinition::implicit(ORG);
    let everything = Filter::from_value(
        &serde_json::json!({}),
        &definition,
        &roomd_model::Limits::default(),
    )
    .unwrap();
    let of_alice = Filter::from_value(
        &serde_json::json!({"owner": "alice"}),
        &definition,
        &roomd_model::Limits::default(),
    )
    .unwrap();
    let open_only = Filter::from_value(
        &serde_json::json!({"state": "open"}),
        &definition,
        &roomd_model::Limits::default(),
    )
    .unwrap();
    let newest_first = SortOrder::new(
        &[SortField {
            path: "created".into(),
            descending: true,
        }],
        &definition,
    )
    .unwrap();

    let page = store
        .find_rooms(query(&Principal::Service, &of_alice, &newest_first, 0, 10))
        .await
        .unwrap();
    let mut expected = alice_rooms.clone();
    expected.sort_by(|a, b| newest_first.compare(a, b));
    assert_eq!(page.rooms, expected);
    assert_eq!(page.next_offset, None);

    let page = store
        .find_rooms(query(&Principal::Service, &open_only, &newest_first, 0, 10))
        .await
        .unwrap();
    assert_eq!(page.rooms, vec![alice_rooms[1].clone()]);

    // Bob reads only his own rooms.
    let page = store
        .find_rooms(query(&bob, &everything, &newest_first, 0, 10))
        .await
        .unwrap();
    assert_eq!(page.rooms.len(), 2);
    assert!(
        page.rooms
            .iter()
            .all(|room| room.owner.as_deref() == Some("bob"))
    );

    // Five rooms in pages of two.
    let first = store
        .find_rooms(query(&Principal::Service, &everything, &newest_first, 0, 2))
        .await
        .unwrap();
    assert_eq!(first.rooms.len(), 2);
    assert_eq!(first.next_offset, Some(2));
    let second = store
        .find_rooms(query(&Principal::Service, &everything, &newest_first, 2, 2))
        .await
        .unwrap();
    assert_eq!(second.next_offset, Some(4));
    let last = store
        .find_rooms(query(&Principal::Service, &everything, &newest_first, 4, 2))
        .await
        .unwrap();
    assert_eq!(last.rooms.len(), 1);
    assert_eq!(last.next_offset, None);
    let mut all: Vec<Room> = [first.rooms, second.rooms, last.rooms].concat();
    assert!(
        all.windows(2)
            .all(|pair| newest_first.compare(&pair[0], &pair[1]).is_lt())
    );
    all.dedup_by_key(|room| room.id);
    assert_eq!(all.len(), 5);

    let beyond = store
        .find_rooms(query(&Principal::Service, &everything, &newest_first, 9, 2))
        .await
        .unwrap();
    assert!(beyond.rooms.is_empty());
    assert_eq!(beyond.next_offset, None);
}

#[tokio::test]
async fn read_events_returns_ranges() {
    let (_server, store) = start().await;
    let lease = first_lease("node-a");
    let mut room = create(&store, "node-a").await;
    open(&store, &mut room, &lease).await;
    close(&store, &mut room, &lease).await;
    let all = store.read_events(ORG, room.id, 1, 100).await.unwrap();
    let total = all.len() as u64;
    assert!(total >= 3, "{all:?}");
    assert_eq!(seqs(&all), (1..=total).collect::<Vec<_>>());

    let cases = [
        (1, 2, vec![1, 2]),
        (2, 1, vec![2]),
        (0, 1, vec![1]),
        (total, 10, vec![total]),
        (total + 1, 10, vec![]),
        (1, 0, vec![]),
        (u64::MAX, usize::MAX, vec![]),
    ];
    for (from_seq, limit, expected) in cases {
        let events = store
            .read_events(ORG, room.id, from_seq, limit)
            .await
            .unwrap();
        assert_eq!(seqs(&events), expected, "from {from_seq}, limit {limit}");
    }

    let error = store
        .read_events("clinic2", room.id, 1, 10)
        .await
        .unwrap_err();
    assert_eq!(error, StoreError::RoomMissing(room.id.to_string()));
}

#[tokio::test]
async fn subscription_survives_redis_restart() {
    let (mut server, store) = start().await;
    let lease = first_lease("node-a");
    let mut room = create(&store, "node-a").await;
    let mut old_receiver = store.subscribe(room.id);
    wait_until_subscribed(&server, room.id).await;

    server.restart().await;

    // The old receiver ends, so its owner subscribes again and reads the log.
    let ended = tokio::time::timeout(WAIT, async {
        while !matches!(old_receiver.recv().await, Err(RecvError::Closed)) {}
    })
    .await;
    assert!(ended.is_ok(), "the old receiver was not closed within 10 s");

    let mut receiver = store.subscribe(room.id);
    wait_until_subscribed(&server, room.id).await;
    let version = room.version;
    let opened = room.open(Utc::now()).unwrap();
    eventually(WAIT, POLL, async || {
        store
            .commit(&room, &opened, version, &lease)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(next_event_from(&mut receiver, 2).await, opened[0]);
}

#[tokio::test]
async fn late_subscriber_gets_last_event() {
    let (server, store) = start().await;
    let room = create(&store, "node-a").await;
    let mut receiver = store.subscribe(room.id);
    wait_until_subscribed(&server, room.id).await;

    // The event stored before the subscription took effect is re-sent.
    let event = next_event_from(&mut receiver, 1).await;
    assert_eq!(event.seq, 1);
    assert_eq!(event.room_id, room.id);
}

#[tokio::test]
async fn invalid_published_message_is_skipped() {
    let (server, store) = start().await;
    let mut redis = server.client().await;
    let lease = first_lease("node-a");
    let mut room = create(&store, "node-a").await;
    let mut receiver = store.subscribe(room.id);
    wait_until_subscribed(&server, room.id).await;

    let _: u64 = redis::cmd("PUBLISH")
        .arg(channel(room.id))
        .arg("{not json")
        .query_async(&mut redis)
        .await
        .unwrap();
    let opened = open(&store, &mut room, &lease).await;
    assert_eq!(next_event_from(&mut receiver, 2).await, opened[0]);
}

#[tokio::test]
async fn node_directory_tracks_heartbeats() {
    let (_server, store) = start().await;
    let ttl = Duration::from_secs(30);
    let info = |name: &str| NodeInfo {
        id: node(name),
        address: "127.0.0.1:7001".into(),
        draining: false,
        rooms: 0,
    };
    store.register(&info("node-a"), ttl).await.unwrap();
    store.register(&info("node-b"), ttl).await.unwrap();

    let mut busier = info("node-a");
    busier.rooms = 3;
    assert!(store.renew(&busier, ttl).await.unwrap());

    store.expire(&node("node-b")).await.unwrap();
    assert!(!store.renew(&info("node-b"), ttl).await.unwrap());

    let nodes = store.nodes().await.unwrap();
    assert_eq!(
        nodes,
        vec![NodeStatus::Live(busier), NodeStatus::Dead(node("node-b"))]
    );
}

#[tokio::test]
async fn heartbeat_expires_after_ttl() {
    let (_server, store) = start().await;
    let info = NodeInfo {
        id: node("node-a"),
        address: "127.0.0.1:7001".into(),
        draining: false,
        rooms: 0,
    };
    store
        .register(&info, Duration::from_millis(200))
        .await
        .unwrap();
    eventually(WAIT, POLL, async || match store.nodes().await {
        Ok(nodes) if nodes == vec![NodeStatus::Dead(node("node-a"))] => Ok(()),
        other => Err(format!("{other:?}")),
    })
    .await;
    assert!(!store.renew(&info, Duration::from_secs(30)).await.unwrap());
}

#[tokio::test]
async fn forget_waits_until_node_owns_nothing() {
    let (_server, store) = start().await;
    let ttl = Duration::from_secs(30);
    let info = |name: &str| NodeInfo {
        id: node(name),
        address: "127.0.0.1:7001".into(),
        draining: false,
        rooms: 0,
    };
    store.register(&info("node-a"), ttl).await.unwrap();
    store.register(&info("node-b"), ttl).await.unwrap();
    let first = create(&store, "node-b").await;
    let second = create(&store, "node-b").await;

    assert!(!store.forget(&node("node-b")).await.unwrap(), "live node");
    store.expire(&node("node-b")).await.unwrap();
    assert!(!store.forget(&node("node-b")).await.unwrap(), "owns rooms");

    let mut owned = store.owned_rooms(Some(&node("node-b")), 10).await.unwrap();
    owned.sort();
    let mut expected = vec![first.id, second.id];
    expected.sort();
    assert_eq!(owned, expected);
    assert_eq!(
        store
            .owned_rooms(Some(&node("node-b")), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .owned_rooms(Some(&node("node-b")), 0)
            .await
            .unwrap()
            .is_empty()
    );

    for room_id in [first.id, second.id] {
        let seen = store.locate(room_id).await.unwrap().unwrap();
        let claimed = store
            .claim_room(room_id, &seen, &node("node-a"))
            .await
            .unwrap();
        assert!(matches!(claimed, Claimed::Won(..)));
    }
    assert!(store.forget(&node("node-b")).await.unwrap());
    assert!(
        !store.forget(&node("node-b")).await.unwrap(),
        "already gone"
    );
    assert_eq!(
        store.nodes().await.unwrap(),
        vec![NodeStatus::Live(info("node-a"))]
    );
}

#[tokio::test]
async fn corrupt_data_is_reported() {
    let (server, store) = start().await;
    let mut redis = server.client().await;
    let room = create(&store, "node-a").await;

    let _: () = redis::cmd("HSET")
        .arg(room_key(room.id))
        .arg("doc")
        .arg("{not json")
        .query_async(&mut redis)
        .await
        .unwrap();
    let error = store.load_room(ORG, room.id).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");

    let _: () = redis::cmd("RPUSH")
        .arg(events_key(room.id))
        .arg("[1, 2]")
        .query_async(&mut redis)
        .await
        .unwrap();
    let error = store.read_events(ORG, room.id, 1, 10).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");

    let _: () = redis::cmd("HSET")
        .arg(room_key(room.id))
        .arg("epoch")
        .arg("one")
        .query_async(&mut redis)
        .await
        .unwrap();
    let error = store.locate(room.id).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");

    let _: () = redis::cmd("SET")
        .arg("roomd:definition:clinic1")
        .arg("definitely not JSON")
        .query_async(&mut redis)
        .await
        .unwrap();
    let error = store.get_definition(ORG).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");

    let _: () = redis::cmd("SADD")
        .arg("roomd:node:node-x:rooms")
        .arg("not-a-room-id")
        .query_async(&mut redis)
        .await
        .unwrap();
    let error = store
        .owned_rooms(Some(&node("node-x")), 10)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");

    // A key of the wrong type.
    let other = RoomId::generate();
    let _: () = redis::cmd("SET")
        .arg(room_key(other))
        .arg("a string")
        .query_async(&mut redis)
        .await
        .unwrap();
    let error = store.load_room(ORG, other).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
}

#[tokio::test]
async fn definitions_round_trip() {
    let (_server, store) = start().await;
    assert_eq!(store.get_definition(ORG).await.unwrap(), None);
    let definition = RoomDefinition::implicit(ORG)
        .with_max_open_rooms(Some(7))
        .unwrap();
    store.put_definition(&definition).await.unwrap();
    assert_eq!(store.get_definition(ORG).await.unwrap(), Some(definition));
    assert_eq!(store.get_definition("clinic2").await.unwrap(), None);
}

#[tokio::test]
async fn calls_fail_fast_while_down() {
    let (mut server, store) = start().await;
    let lease = first_lease("node-a");
    let mut room = create(&store, "node-a").await;
    server.stop().await;

    let started = Instant::now();
    let error = store.load_room(ORG, room.id).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(
        started.elapsed() < DOWN_CALL_LIMIT,
        "{:?}",
        started.elapsed()
    );

    let version = room.version;
    let events = room.open(Utc::now()).unwrap();
    let started = Instant::now();
    let error = store
        .commit(&room, &events, version, &lease)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(
        started.elapsed() < DOWN_CALL_LIMIT,
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let error = store.nodes().await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(
        started.elapsed() < DOWN_CALL_LIMIT,
        "{:?}",
        started.elapsed()
    );

    // Nothing was applied, and the store works again once Redis is back.
    server.start().await;
    eventually(WAIT, POLL, async || {
        store
            .commit(&room, &events, version, &lease)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    let log = store.read_events(ORG, room.id, 1, 100).await.unwrap();
    assert_eq!(seqs(&log), vec![1, 2]);
}

#[tokio::test]
async fn connect_fails_without_showing_password() {
    let mut server = RedisServer::spawn().await;
    server.stop().await;
    let url = format!("redis://user:s3cret@127.0.0.1:{}", server.port());

    let started = Instant::now();
    let error = RedisStore::connect(RedisConfig::new(url))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < DOWN_CALL_LIMIT,
        "{:?}",
        started.elapsed()
    );
    let StoreError::Unavailable(message) = error else {
        panic!("expected Unavailable, got {error:?}");
    };
    assert!(!message.contains("s3cret"), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{}", server.port())),
        "{message}"
    );
}

#[tokio::test]
async fn password_without_user_subscribes() {
    // A Redis without a password accepts a password for the default user,
    // so a URL with one must give working commands and subscriptions.
    let server = RedisServer::spawn().await;
    let url = format!("redis://:unused-password@127.0.0.1:{}", server.port());
    let store = RedisStore::connect(RedisConfig::new(url))
        .await
        .expect("connect with a password");
    let lease = first_lease("node-a");
    let mut room = create(&store, "node-a").await;
    let mut receiver = store.subscribe(room.id);
    wait_until_subscribed(&server, room.id).await;

    let opened = open(&store, &mut room, &lease).await;

    assert_eq!(next_event_from(&mut receiver, 2).await, opened[0]);
}

#[tokio::test]
async fn connect_rejects_invalid_url() {
    let error = RedisStore::connect(RedisConfig::new("not a url"))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn write_to_paused_redis_is_ambiguous() {
    let (mut server, store) = start().await;
    let lease = first_lease("node-a");
    let mut room = create(&store, "node-a").await;
    // A first commit loads the commit script, so the paused one below runs
    // it instead of failing with NOSCRIPT.
    open(&store, &mut room, &lease).await;
    server.sigstop();

    let started = Instant::now();
    let error = store.load_room(ORG, room.id).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(
        started.elapsed() < DOWN_CALL_LIMIT,
        "{:?}",
        started.elapsed()
    );

    let version = room.version;
    let events = room.close(&Principal::Service, Utc::now()).unwrap();
    let started = Instant::now();
    let error = store
        .commit(&room, &events, version, &lease)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Ambiguous(_)), "{error:?}");
    assert!(
        started.elapsed() < DOWN_CALL_LIMIT,
        "{:?}",
        started.elapsed()
    );

    // The script reached Redis before the reply timed out, so it runs once
    // Redis resumes: the outcome really was unknown.
    server.sigcont();
    let log = eventually(WAIT, POLL, async || {
        let log = store
            .read_events(ORG, room.id, 1, 100)
            .await
            .map_err(|e| e.to_string())?;
        if log.len() == 2 + events.len() {
            Ok(log)
        } else {
            Err(format!("{} events", log.len()))
        }
    })
    .await;
    assert_eq!(log[2..], events[..]);
}

#[tokio::test]
async fn overdue_rooms_are_listed_until_closed() {
    let (_server, store) = start().await;
    let lease = first_lease("node-a");
    let mut room = create(&store, "node-a").await;
    open(&store, &mut room, &lease).await;
    let (deadline, _) = room.next_deadline().expect("an open room has a deadline");

    let before_deadline = store
        .overdue_rooms(deadline - chrono::Duration::seconds(1), 10)
        .await
        .unwrap();
    assert!(
        before_deadline.is_empty(),
        "listed early: {before_deadline:?}"
    );

    let after_deadline = deadline + chrono::Duration::seconds(1);
    let overdue = store.overdue_rooms(after_deadline, 10).await.unwrap();
    assert_eq!(overdue, vec![room.id]);
    assert!(
        store
            .overdue_rooms(after_deadline, 0)
            .await
            .unwrap()
            .is_empty()
    );

    close(&store, &mut room, &lease).await;
    let overdue = store.overdue_rooms(after_deadline, 10).await.unwrap();
    assert!(
        overdue.is_empty(),
        "a closed room has no timer: {overdue:?}"
    );
}
