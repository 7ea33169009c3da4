//! The `durable-create` benchmark: CreateRoom on one clustered roomd node
//! over the Redis store, and `redis-benchmark -t set` with as many clients
//! against the same Redis in the same run.
//!
//! The node runs in this process and shares its tokio runtime with the
//! gRPC clients. redis-benchmark runs as its own process after the roomd
//! phase, so the two never compete for the CPU.

use std::time::Duration;

use tokio::time::Instant;

use crate::cli::DurableCreateArgs;
use crate::client::{connect, create_workers};
use crate::load;
use crate::node::Node;
use crate::redis_server::{RedisServer, RunDir, cpu_seconds, run_redis_benchmark};
use crate::report::{ClientSetup, CpuUse, DurableCreateReport, Phase, Target};

/// CreateRoom requests per second of roomd over SET requests per second of
/// redis-benchmark that the benchmark is expected to reach.
pub const CREATE_RATIO_TARGET: f64 = 0.5;

/// Node TTL of the single node. No other node watches it, so the value
/// only sets its heartbeat interval (a third of it).
const NODE_TTL: Duration = Duration::from_secs(5);

pub async fn run(args: &DurableCreateArgs) -> Result<DurableCreateReport, String> {
    let dir = RunDir::new(None)?;
    let redis = RedisServer::start(&args.redis, dir.path()).await?;
    let calls_before = redis.command_calls().await?;
    let node = Node::start_clustered(&redis.url, NODE_TTL).await?;
    let channels = connect(&node.address, &args.load).await?;

    let own_pid = std::process::id();
    let cpu_before = (cpu_seconds(own_pid)?, cpu_seconds(redis.pid)?);
    let started = Instant::now();
    let created = load::run(args.load.plan(), create_workers(&channels, &args.load)).await?;
    let wall_seconds = started.elapsed().as_secs_f64();
    let cpu = CpuUse {
        wall_seconds,
        bench_cores: (cpu_seconds(own_pid)? - cpu_before.0) / wall_seconds,
        redis_cores: (cpu_seconds(redis.pid)? - cpu_before.1) / wall_seconds,
    };
    // Read before anything else touches Redis. The first INFO call counts
    // itself; the second does not count itself yet.
    let calls_after = redis.command_calls().await?;
    let stored_rooms = redis.room_count_of(&node.node_id()).await?;
    let mut redis_calls_per_room: Vec<(String, f64)> = calls_after
        .iter()
        .map(|(name, after)| {
            let mut calls = after - calls_before.get(name).copied().unwrap_or(0);
            if name == "info" {
                calls = calls.saturating_sub(1);
            }
            (name.clone(), calls as f64 / stored_rooms.max(1) as f64)
        })
        .filter(|(_, per_room)| *per_room > 0.0)
        .collect();
    redis_calls_per_room.sort_by(|a, b| b.1.total_cmp(&a.1));
    let connections = channels.len();
    drop(channels);
    node.abandon();

    let reference = run_redis_benchmark(
        &args.redis_benchmark,
        redis.port,
        args.load.concurrency,
        args.redis_requests,
    )
    .await?;
    let ratio = if reference.requests_per_second > 0.0 {
        created.requests_per_second() / reference.requests_per_second
    } else {
        0.0
    };
    Ok(DurableCreateReport {
        clients: ClientSetup::new(&args.load, connections),
        redis: redis.setup.clone(),
        create: Phase::new("CreateRoom", "roomd", &created, None),
        rooms_owned_by_node: stored_rooms,
        redis_calls_per_room,
        cpu,
        redis_benchmark: reference,
        create_ratio: Target::at_least(ratio, CREATE_RATIO_TARGET),
    })
}
