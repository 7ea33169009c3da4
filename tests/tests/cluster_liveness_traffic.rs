//! The Redis traffic of idle nodes grows with the number of nodes, not
//! with the number of rooms: three idle nodes send about as many commands
//! per second with 10,000 open rooms as with 10.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomd_proto::v1::{CreateRoomRequest, RoomConfigurationInput};
use roomd_tests::cluster_client::map_concurrently;
use roomd_tests::{Caller, Cluster, RedisServer, open_room};

const ORG: &str = "clinic-liveness";
const FEW_ROOMS: usize = 10;
const MANY_ROOMS: usize = 10_000;
/// CreateRoom calls in flight at once while the rooms are made.
const CREATE_CONCURRENCY: usize = 64;
/// How long the test waits after the last create before it measures, so
/// that no request is still running.
const SETTLE: Duration = Duration::from_secs(1);
/// Length of one measurement: several heartbeats (every TTL / 3) and
/// adoption scans (every TTL / 5) with the TTL of 2 s.
const IDLE_WINDOW: Duration = Duration::from_millis(3_500);
/// Allowed growth of the idle rate from few to many rooms: a factor and a
/// constant in commands per second.
const MAX_GROWTH_FACTOR: f64 = 1.5;
const MAX_GROWTH_CONSTANT: f64 = 5.0;
/// The largest unused timeout a room may have (24 h), so that no room
/// closes while the test runs.
const DAY_SECS: u32 = 86_400;

fn idle_room(index: usize) -> CreateRoomRequest {
    CreateRoomRequest {
        configuration: Some(RoomConfigurationInput {
            unused_timeout: Some(DAY_SECS),
            empty_timeout: Some(DAY_SECS),
            ..RoomConfigurationInput::default()
        }),
        ..open_room(&format!("Idle {index}"), &[])
    }
}

/// Creates rooms `first..last`, spread over the nodes, and returns how long
/// that took.
async fn create_rooms(cluster: &Cluster, first: usize, last: usize) -> Duration {
    let mut clients = Vec::new();
    for node in cluster.nodes() {
        clients.push(node.rooms_client().await);
    }
    let clients = Arc::new(clients);
    let started = Instant::now();
    map_concurrently(first..last, CREATE_CONCURRENCY, move |index| {
        let mut rooms = clients[index % clients.len()].clone();
        async move {
            roomd_tests::create_room(&mut rooms, &Caller::service(ORG), idle_room(index)).await;
        }
    })
    .await;
    started.elapsed()
}

/// Returns the commands per second that Redis ran during [`IDLE_WINDOW`],
/// without the INFO commands that read the counts, and the count of each
/// command.
async fn idle_rate(redis: &RedisServer) -> (f64, BTreeMap<String, u64>) {
    let before = redis.command_stats().await;
    let started = Instant::now();
    tokio::time::sleep(IDLE_WINDOW).await;
    let after = redis.command_stats().await;
    let elapsed = started.elapsed().as_secs_f64();

    let mut delta = BTreeMap::new();
    for (command, calls) in &after {
        if command == "info" {
            continue;
        }
        let grown = calls - before.get(command).copied().unwrap_or(0);
        if grown > 0 {
            delta.insert(command.clone(), grown);
        }
    }
    let total: u64 = delta.values().sum();
    (total as f64 / elapsed, delta)
}

#[tokio::test]
async fn idle_traffic_does_not_grow_with_rooms() {
    let cluster = Cluster::start(3).await;

    create_rooms(&cluster, 0, FEW_ROOMS).await;
    tokio::time::sleep(SETTLE).await;
    let (few_rate, few_commands) = idle_rate(cluster.redis()).await;
    println!("{FEW_ROOMS} rooms: {few_rate:.1} commands/s while idle: {few_commands:?}");

    let took = create_rooms(&cluster, FEW_ROOMS, MANY_ROOMS).await;
    println!(
        "created {} rooms in {took:?} with {CREATE_CONCURRENCY} calls at once",
        MANY_ROOMS - FEW_ROOMS
    );
    let mut redis = cluster.redis().client().await;
    let open: u64 = redis::cmd("SCARD")
        .arg(format!("roomd:org:{ORG}:open"))
        .query_async(&mut redis)
        .await
        .expect("SCARD the org's open rooms");
    assert_eq!(open, MANY_ROOMS as u64, "open rooms stored in Redis");
    tokio::time::sleep(SETTLE).await;

    let (many_rate, many_commands) = idle_rate(cluster.redis()).await;
    println!("{MANY_ROOMS} rooms: {many_rate:.1} commands/s while idle: {many_commands:?}");

    let limit = few_rate * MAX_GROWTH_FACTOR + MAX_GROWTH_CONSTANT;
    assert!(
        many_rate <= limit,
        "idle Redis traffic grew from {few_rate:.1}/s with {FEW_ROOMS} rooms to \
         {many_rate:.1}/s with {MANY_ROOMS}, above {limit:.1}/s.\n\
         With {FEW_ROOMS}: {few_commands:?}\nWith {MANY_ROOMS}: {many_commands:?}"
    );
}
