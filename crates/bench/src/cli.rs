//! Command-line flags of `roomd-bench`.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::load::{Limit, Plan};

/// Longest measured window or warm-up accepted, so that every run stops by
/// itself within a known time.
pub const MAX_PHASE: Duration = Duration::from_secs(60 * 60);
/// Most concurrent client workers accepted.
pub const MAX_CONCURRENCY: u32 = 10_000;
/// Most measured requests per operation accepted with `--requests`.
pub const MAX_REQUESTS: u64 = 100_000_000;
/// Most rooms accepted by `memory --rooms`.
pub const MAX_MEMORY_ROOMS: u32 = 10_000_000;

/// Load generator for roomd. Every server it starts runs inside this
/// process and listens on 127.0.0.1 only. Build it with `--release`.
#[derive(Debug, Parser)]
#[command(name = "roomd-bench", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print the results as one JSON document instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    /// Install a tracing subscriber that writes the server's logs to stderr
    /// with this filter (for example `info`). Without it the in-process
    /// server logs nothing, so log formatting is not part of the figures.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure CreateRoom, GetRoom and JoinRoom over gRPC on loopback, and
    /// GetRoom against a bare tonic handler as the reference.
    Throughput(ThroughputArgs),
    /// Measure resident memory per open room.
    Memory(MemoryArgs),
    /// Measure CreateRoom on one clustered node over the Redis store, and
    /// `redis-benchmark -t set` against the same Redis as the reference.
    DurableCreate(DurableCreateArgs),
    /// Measure GetRoom through the owning node and through a second node
    /// that forwards it to the owner over the internal API.
    ForwardedGet(ForwardedGetArgs),
    /// Kill the node that owns every room with SIGKILL and measure how long
    /// the two surviving nodes take to serve all of them again.
    Failover(FailoverArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Get,
    Create,
    Join,
}

/// The client side of a measured phase: workers, connections and the
/// window, shared by every subcommand that drives gRPC load.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Concurrent client workers. Each sends one request at a time.
    #[arg(long, short = 'c', default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONCURRENCY)))]
    pub concurrency: u32,

    /// Workers that share one HTTP/2 connection (one tonic Channel). The
    /// client opens ceil(concurrency / this) connections to each server.
    #[arg(long, default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONCURRENCY)))]
    pub workers_per_connection: u32,

    /// Measured window per operation, for example `10s`, `500ms` or `2m`.
    #[arg(long, short = 'd', default_value = "10s", value_parser = measured_duration,
          conflicts_with = "requests")]
    pub duration: Duration,

    /// Measure this many requests per operation instead of a fixed window.
    #[arg(long, short = 'n',
          value_parser = clap::value_parser!(u64).range(1..=MAX_REQUESTS))]
    pub requests: Option<u64>,

    /// Unmeasured load before each operation's measured window, for
    /// example `2s`, or `0s` for none.
    #[arg(long, short = 'w', default_value = "2s", value_parser = warmup_duration)]
    pub warmup: Duration,
}

impl LoadArgs {
    /// Returns the load plan these flags describe.
    pub fn plan(&self) -> Plan {
        Plan {
            concurrency: self.concurrency as usize,
            warmup: self.warmup,
            limit: match self.requests {
                Some(count) => Limit::Requests(count),
                None => Limit::Duration(self.duration),
            },
        }
    }
}

#[derive(Debug, Args)]
pub struct ThroughputArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    /// Operations to measure, comma-separated. `get` also measures the bare
    /// tonic reference.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "get,create,join"
    )]
    pub ops: Vec<Operation>,

    /// Rooms that GetRoom requests cycle through.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub get_rooms: u32,

    /// Distinct accounts that join each room before a worker moves on to the
    /// next room. Rooms allow 500 participants, so every join is accepted.
    #[arg(long, default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(roomd_model::room::MAX_PARTICIPANTS)))]
    pub joins_per_room: u32,
}

#[derive(Debug, Args)]
pub struct MemoryArgs {
    /// Open rooms to create for the measurement.
    #[arg(long, default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_MEMORY_ROOMS)))]
    pub rooms: u32,

    /// Rooms created before the first reading, so that one-time allocations
    /// (runtime, registry, maps) are not charged to the measured rooms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub warmup_rooms: u32,

    /// Concurrent tasks that call RoomService::create.
    #[arg(long, short = 'c', default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_CONCURRENCY)))]
    pub concurrency: u32,
}

/// Redis's `appendfsync` setting, which decides when the append-only file
/// is flushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AppendFsync {
    /// fsync once per second; a crash loses up to about one second of writes.
    Everysec,
    /// fsync before every reply.
    Always,
}

impl AppendFsync {
    pub fn as_str(self) -> &'static str {
        match self {
            AppendFsync::Everysec => "everysec",
            AppendFsync::Always => "always",
        }
    }
}

/// The Redis server that a cluster benchmark starts for itself.
#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// When the Redis append-only file is flushed to disk. AOF is always on.
    #[arg(long, value_enum, default_value_t = AppendFsync::Everysec)]
    pub appendfsync: AppendFsync,

    /// The redis-server program to start, looked up on PATH unless the
    /// value contains a slash. It listens on 127.0.0.1 only.
    #[arg(long, default_value = "redis-server", value_name = "PROGRAM")]
    pub redis_server: String,
}

#[derive(Debug, Args)]
pub struct DurableCreateArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    #[command(flatten)]
    pub redis: RedisArgs,

    /// SET requests that redis-benchmark sends (its `-n`). It uses as many
    /// clients as --concurrency.
    #[arg(long, default_value_t = 200_000,
          value_parser = clap::value_parser!(u64).range(1..=MAX_REQUESTS))]
    pub redis_requests: u64,

    /// The redis-benchmark program to run, looked up on PATH unless the
    /// value contains a slash.
    #[arg(long, default_value = "redis-benchmark", value_name = "PROGRAM")]
    pub redis_benchmark: String,
}

#[derive(Debug, Args)]
pub struct ForwardedGetArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    #[command(flatten)]
    pub redis: RedisArgs,

    /// Rooms that node A owns and GetRoom requests cycle through.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub get_rooms: u32,
}

#[derive(Debug, Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub redis: RedisArgs,

    /// The roomd binary to start three times. Build it first with
    /// `cargo build --release -p roomd-server --bin roomd`.
    #[arg(long, default_value = "target/release/roomd", value_name = "PATH")]
    pub roomd: std::path::PathBuf,

    /// Seconds a node's heartbeat lasts (roomd's --node-ttl).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub node_ttl: u64,

    /// Rooms created through node A before it is killed.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rooms: u32,

    /// Concurrent GetRoom workers that poll the rooms after the kill, half
    /// through node B and half through node C. Also the number of workers
    /// that create the rooms.
    #[arg(long, short = 'c', default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(2..=i64::from(MAX_CONCURRENCY)))]
    pub concurrency: u32,

    /// How long to poll after the kill before giving up on the rooms not
    /// served yet, for example `60s`.
    #[arg(long, default_value = "60s", value_parser = measured_duration)]
    pub max_wait: Duration,

    /// Directory for the log files of Redis and the three nodes and for
    /// Redis's data, which is kept. Without it they go to a temporary
    /// directory that is removed at the end.
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<std::path::PathBuf>,
}

fn measured_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err("must be longer than 0s".into());
    }
    Ok(duration)
}

fn warmup_duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

/// Parses a duration written as a number with the unit `ms`, `s` or `m`. A
/// bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write for example 10s, 500ms or 2m"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        _ => {
            return Err(format!(
                "{text:?} has the unknown unit {unit:?}; use ms, s or m"
            ));
        }
    };
    if seconds > MAX_PHASE.as_secs_f64() {
        return Err(format!(
            "{text} is longer than the maximum of {} s",
            MAX_PHASE.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("roomd-bench").chain(args.iter().copied()))
    }

    #[test]
    fn duration_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn duration_rejects_bad_text() {
        for bad in ["", "s", "ten", "10h", "-1s", "1.2.3s", "61m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn throughput_defaults() {
        let Command::Throughput(args) = parse(&["throughput"]).unwrap().command else {
            panic!("expected the throughput subcommand");
        };
        assert_eq!(args.load.concurrency, 32);
        assert_eq!(args.load.duration, Duration::from_secs(10));
        assert_eq!(args.load.warmup, Duration::from_secs(2));
        assert_eq!(args.load.requests, None);
        assert_eq!(
            args.ops,
            vec![Operation::Get, Operation::Create, Operation::Join]
        );
    }

    #[test]
    fn throughput_rejects_bad_flags() {
        for bad in [
            &["throughput", "--concurrency", "0"][..],
            &["throughput", "--workers-per-connection", "0"],
            &["throughput", "--duration", "0s"],
            &["throughput", "--requests", "0"],
            &["throughput", "--duration", "5s", "--requests", "10"],
            &["throughput", "--ops", "delete"],
            &["throughput", "--joins-per-room", "501"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn cluster_defaults() {
        let Command::DurableCreate(args) = parse(&["durable-create"]).unwrap().command else {
            panic!("expected the durable-create subcommand");
        };
        assert_eq!(args.load.concurrency, 32);
        assert_eq!(args.redis.appendfsync, AppendFsync::Everysec);
        assert_eq!(args.redis_requests, 200_000);

        let Command::Failover(args) = parse(&["failover"]).unwrap().command else {
            panic!("expected the failover subcommand");
        };
        assert_eq!(args.node_ttl, 5);
        assert_eq!(args.rooms, 10_000);
        assert_eq!(args.max_wait, Duration::from_secs(60));
    }

    #[test]
    fn cluster_rejects_bad_flags() {
        for bad in [
            &["durable-create", "--appendfsync", "no"][..],
            &["durable-create", "--redis-requests", "0"],
            &["durable-create", "--concurrency", "0"],
            &["durable-create", "--duration", "5s", "--requests", "10"],
            &["forwarded-get", "--get-rooms", "0"],
            &["forwarded-get", "--workers-per-connection", "0"],
            &["failover", "--node-ttl", "0"],
            &["failover", "--node-ttl", "301"],
            &["failover", "--rooms", "0"],
            &["failover", "--concurrency", "1"],
            &["failover", "--max-wait", "0s"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse(&["durable-create", "--appendfsync", "always"]).is_ok());
    }

    #[test]
    fn memory_rejects_zero_rooms() {
        assert!(parse(&["memory", "--rooms", "0"]).is_err());
        assert!(parse(&["memory", "--concurrency", "0"]).is_err());
        assert!(parse(&["memory", "--rooms", "5", "--json"]).is_ok());
    }
}
