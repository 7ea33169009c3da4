//! A cluster of two `roomd` processes (node TTL 5 s) while its Redis server
//! stops and starts again. Requests fail with a retryable UNAVAILABLE while
//! Redis is down and succeed again by themselves once it is back. Every
//! change acknowledged before the stop is still there, because Redis runs
//! with the append-only file and `appendfsync always`.

use std::time::{Duration, Instant};

use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::{FindRoomsRequest, Room};
use roomd_tests::cluster_client::stored_events;
use roomd_tests::{
    Caller, Cluster, Fault, eventually, get_request, join_room, open_room, update_request,
};
use tonic::transport::Channel;
use tonic::{Code, Status};

const ORG: &str = "clinic-redis-restart";
const NODE_TTL_SECS: u64 = 5;
const ROOMS_PER_NODE: usize = 3;
/// Time between two rounds of requests while Redis is down.
const OUTAGE_POLL: Duration = Duration::from_millis(500);
/// How long one request may take while Redis is down. The store's Redis
/// response and connect timeouts are 2 s and 1 s, and a forwarded request
/// is tried up to 4 times.
const DOWN_CALL_LIMIT: Duration = Duration::from_secs(8);
/// How long the cluster may take to serve again once Redis is back: a node
/// that fenced itself rejoins at its next heartbeat, and the rooms of its
/// old id are adopted at the next scan.
const RECOVERY_LIMIT: Duration = Duration::from_secs(20);

fn service() -> Caller {
    Caller::service(ORG)
}

/// Asserts the fault of a request made while Redis is down.
#[track_caller]
fn assert_unavailable(status: &Status, what: &str) {
    let fault = Fault::from_status(status);
    assert_eq!(fault.code, Code::Unavailable, "{what}: {fault:?}");
    assert!(
        fault.reason == "unavailable.store" || fault.reason == "unavailable.owner",
        "{what}: {fault:?}"
    );
    assert_eq!(fault.domain, "roomd", "{what}: {fault:?}");
}

/// Runs a call with [`DOWN_CALL_LIMIT`], so that a hang fails the test.
async fn bounded<T>(
    what: &str,
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    tokio::time::timeout(DOWN_CALL_LIMIT, call)
        .await
        .unwrap_or_else(|_| panic!("{what} took over {DOWN_CALL_LIMIT:?} while Redis was down"))
        .map(tonic::Response::into_inner)
}

/// The parts of a room that the outage must not change.
fn durable_fields(room: &Room) -> (String, u64, u64, i32, Vec<(String, i32)>) {
    let participants = room
        .participants
        .iter()
        .map(|participant| (participant.account.clone(), participant.status))
        .collect();
    (
        room.label.clone(),
        room.version,
        room.last_seq,
        room.state,
        participants,
    )
}

/// Sends requests of every kind through both nodes while Redis is down,
/// for `outage`, and checks that each write fails with a retryable fault
/// and each read either fails so or returns the acknowledged room.
async fn requests_while_down(
    clients: &mut [RoomsClient<Channel>],
    acknowledged: &[Room],
    outage: Duration,
) {
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < outage {
        for (node, rooms) in clients.iter_mut().enumerate() {
            let room = &acknowledged[(round + node) % acknowledged.len()];
            let what = format!("round {round}, node {node}");

            let update = service().request(update_request(
                &room.id,
                r#"{"$set":{"label":"Changed while Redis is down"}}"#,
            ));
            match bounded("UpdateRoom", rooms.update_room(update)).await {
                Ok(changed) => {
                    panic!("{what}: UpdateRoom succeeded while Redis was down: {changed:?}")
                }
                Err(status) => assert_unavailable(&status, &format!("{what}: UpdateRoom")),
            }

            let join = Caller::account(ORG, "joined-while-down")
                .request(roomd_tests::join_request(&room.id, ""));
            match bounded("JoinRoom", rooms.join_room(join)).await {
                Ok(changed) => {
                    panic!("{what}: JoinRoom succeeded while Redis was down: {changed:?}")
                }
                Err(status) => assert_unavailable(&status, &format!("{what}: JoinRoom")),
            }

            let create = service().request(open_room("Created while Redis is down", &[]));
            match bounded("CreateRoom", rooms.create_room(create)).await {
                Ok(created) => {
                    panic!("{what}: CreateRoom succeeded while Redis was down: {created:?}")
                }
                Err(status) => assert_unavailable(&status, &format!("{what}: CreateRoom")),
            }

            let find = service().request(FindRoomsRequest::default());
            match bounded("FindRooms", rooms.find_rooms(find)).await {
                Ok(found) => panic!("{what}: FindRooms succeeded while Redis was down: {found:?}"),
                Err(status) => assert_unavailable(&status, &format!("{what}: FindRooms")),
            }

            // A room's owner may still serve a read from memory.
            let get = service().request(get_request(&room.id));
            match bounded("GetRoom", rooms.get_room(get)).await {
                Ok(read) => assert_eq!(
                    durable_fields(&read),
                    durable_fields(room),
                    "{what}: GetRoom while Redis was down"
                ),
                Err(status) => assert_unavailable(&status, &format!("{what}: GetRoom")),
            }
        }
        round += 1;
        tokio::time::sleep(OUTAGE_POLL).await;
    }
    println!("{round} rounds of requests while Redis was down for {outage:?}");
}

async fn survive_redis_restart(outage: Duration) {
    let mut cluster = Cluster::builder()
        .nodes(2)
        .node_ttl(NODE_TTL_SECS)
        .start()
        .await;
    let mut clients = vec![
        cluster.node(0).rooms_client().await,
        cluster.node(1).rooms_client().await,
    ];

    let mut acknowledged = Vec::new();
    for index in 0..ROOMS_PER_NODE * clients.len() {
        let rooms = &mut clients[index % 2];
        let label = format!("Before the outage {index}");
        let room = roomd_tests::create_room(
            rooms,
            &service(),
            open_room(&label, &["account.public.read"]),
        )
        .await;
        join_room(rooms, &Caller::account(ORG, "joined-before"), &room.id).await;
        let update = format!(r#"{{"$set":{{"label":"{label}, updated"}}}}"#);
        let updated = rooms
            .update_room(service().request(update_request(&room.id, &update)))
            .await
            .unwrap_or_else(|status| panic!("update {}: {status:?}", room.id))
            .into_inner();
        acknowledged.push(updated);
    }

    let stopped = cluster.redis_mut().stop().await;
    assert!(
        stopped.is_some_and(|status| status.success()),
        "redis-server did not exit cleanly: {stopped:?}\n{}",
        cluster.redis().log()
    );
    requests_while_down(&mut clients, &acknowledged, outage).await;

    cluster.redis_mut().start().await;
    let restarted = Instant::now();
    let probe = acknowledged[0].id.clone();
    eventually(RECOVERY_LIMIT, Duration::from_millis(100), async || {
        for (node, rooms) in clients.iter_mut().enumerate() {
            let update = service().request(update_request(
                &probe,
                r#"{"$set":{"label":"Changed after the restart"}}"#,
            ));
            rooms
                .update_room(update)
                .await
                .map_err(|status| format!("node {node}: UpdateRoom: {status:?}"))?;
            let create = service().request(open_room("Created after the restart", &[]));
            rooms
                .create_room(create)
                .await
                .map_err(|status| format!("node {node}: CreateRoom: {status:?}"))?;
        }
        Ok(())
    })
    .await;
    println!(
        "after an outage of {outage:?}, both nodes served writes {:?} after Redis started again",
        restarted.elapsed()
    );

    // Every acknowledged change is there, read through both nodes and from
    // the store. The probe room has the one change made after the restart.
    let mut redis = cluster.redis().client().await;
    for room in &acknowledged[1..] {
        for (node, rooms) in clients.iter_mut().enumerate() {
            let read = roomd_tests::get_room(rooms, &service(), &room.id).await;
            assert_eq!(
                durable_fields(&read),
                durable_fields(room),
                "room {} through node {node} after the restart",
                room.id
            );
        }
        let events = stored_events(&mut redis, &room.id).await;
        let seqs: Vec<u64> = events.iter().map(|event| event.seq).collect();
        let expected: Vec<u64> = (1..=room.last_seq).collect();
        assert_eq!(seqs, expected, "stored events of room {}", room.id);
    }
    let probe_room = roomd_tests::get_room(&mut clients[1], &service(), &probe).await;
    assert_eq!(probe_room.label, "Changed after the restart");
    assert_eq!(
        probe_room.version,
        acknowledged[0].version + 1,
        "the probe room changed once after the restart, and never while Redis was down"
    );
    let participants: Vec<&str> = probe_room
        .participants
        .iter()
        .map(|participant| participant.account.as_str())
        .collect();
    assert_eq!(participants, ["joined-before"]);
}

/// Redis stays down for less than the node TTL: the nodes keep their ids.
#[tokio::test]
async fn short_redis_outage_recovers() {
    survive_redis_restart(Duration::from_secs(2)).await;
}

/// Redis stays down past the node TTL: the nodes fence themselves, rejoin
/// under fresh ids once it is back, and adopt the rooms of their old ids.
#[tokio::test]
async fn long_redis_outage_recovers() {
    survive_redis_restart(Duration::from_secs(NODE_TTL_SECS + 1)).await;
}
