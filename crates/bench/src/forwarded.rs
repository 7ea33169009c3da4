//! The `forwarded-get` benchmark: two clustered roomd nodes on one Redis,
//! every room owned by node A, and GetRoom sent through A (served by the
//! owner) and then through B (forwarded to A over A's internal API).
//!
//! Both nodes run in this process, each with its own public and internal
//! port on 127.0.0.1, and share its tokio runtime with the gRPC clients.

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;

use crate::cli::ForwardedGetArgs;
use crate::client::{connect, fetch_room, get_workers};
use crate::load::{self, ratio};
use crate::node::Node;
use crate::redis_server::{RedisServer, RunDir};
use crate::report::{ClientSetup, ForwardedGetReport, Phase};
use crate::rooms;

/// Node TTL of both nodes. Neither dies during the run, so it only sets
/// their heartbeat and scan intervals.
const NODE_TTL: Duration = Duration::from_secs(5);

/// GetRooms sent one at a time to count the Redis calls of one request.
const PROBE_REQUESTS: usize = 1000;

/// Tasks that create the rooms before the measurement.
const SETUP_CONCURRENCY: u32 = 8;

pub async fn run(args: &ForwardedGetArgs) -> Result<ForwardedGetReport, String> {
    let dir = RunDir::new(None)?;
    let redis = RedisServer::start(&args.redis, dir.path()).await?;

    // RoomService::create on A stores each room with A as its owner. A
    // CreateRoom over gRPC could place rooms on B once B runs.
    let owner = Node::start_clustered(&redis.url, NODE_TTL).await?;
    let room_ids: Arc<[String]> =
        rooms::create_many(&owner.service, args.get_rooms, SETUP_CONCURRENCY)
            .await?
            .into();
    let forwarder = Node::start_clustered(&redis.url, NODE_TTL).await?;

    let owned = redis.room_count_of(&owner.node_id()).await?;
    if owned != u64::from(args.get_rooms) {
        return Err(format!(
            "node A owns {owned} rooms in Redis, not the {} it created",
            args.get_rooms
        ));
    }

    let owner_channels = connect(&owner.address, &args.load).await?;
    let forwarder_channels = connect(&forwarder.address, &args.load).await?;
    // One forwarded read first, so that a broken forwarding path fails
    // here with its status instead of as a count of errors.
    fetch_room(&forwarder_channels[0], &room_ids[0]).await?;

    let plan = args.load.plan();
    let direct = load::run(plan, get_workers(&owner_channels, &room_ids, &args.load)).await?;
    let forwarded = load::run(
        plan,
        get_workers(&forwarder_channels, &room_ids, &args.load),
    )
    .await?;
    let calls_through_a = redis_calls_per_get(&redis, &owner_channels[0], &room_ids).await?;
    let calls_through_b = redis_calls_per_get(&redis, &forwarder_channels[0], &room_ids).await?;
    let owned_after = redis.room_count_of(&owner.node_id()).await?;
    let forwarder_owned_after = redis.room_count_of(&forwarder.node_id()).await?;

    let connections = owner_channels.len();
    drop(owner_channels);
    drop(forwarder_channels);
    forwarder.abandon();
    owner.abandon();
    Ok(ForwardedGetReport {
        clients: ClientSetup::new(&args.load, connections),
        redis: redis.setup.clone(),
        rooms: args.get_rooms,
        rooms_owned_by_a_after: owned_after,
        rooms_owned_by_b_after: forwarder_owned_after,
        phases: vec![
            Phase::new("GetRoom", "A (owner)", &direct, None),
            Phase::new("GetRoom", "B (forwards)", &forwarded, None),
        ],
        forwarded_ratio: ratio(&forwarded, &direct),
        redis_calls_per_get_through_a: calls_through_a,
        redis_calls_per_get_through_b: calls_through_b,
    })
}

/// Counts the Redis calls of [`PROBE_REQUESTS`] GetRooms sent one at a time
/// over `channel`, per request. Heartbeats and adoption scans of both
/// nodes in that time add a few calls.
async fn redis_calls_per_get(
    redis: &RedisServer,
    channel: &Channel,
    room_ids: &[String],
) -> Result<f64, String> {
    let before = redis.command_calls().await?;
    for room_id in room_ids.iter().cycle().take(PROBE_REQUESTS) {
        fetch_room(channel, room_id).await?;
    }
    let after = redis.command_calls().await?;
    let mut calls: u64 = after
        .iter()
        .map(|(name, count)| count - before.get(name).copied().unwrap_or(0))
        .sum();
    // The first INFO call counts itself; the second does not yet.
    calls = calls.saturating_sub(1);
    Ok(calls as f64 / PROBE_REQUESTS as f64)
}
