//! Results of the benchmarks, printed as a table or as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::{LoadArgs, Operation, ThroughputArgs};
use crate::load::Outcome;
use crate::redis_server::{RedisBenchmark, RedisSetup};

/// The whole output of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    /// The 1, 5 and 15 minute load averages from `/proc/loadavg` when the
    /// run started. Other work on the machine competes for its CPUs.
    pub load_average_at_start: Option<[f64; 3]>,
    /// Filter of the tracing subscriber given with `--log`. Without one the
    /// server formats and writes no logs.
    pub server_log: Option<String>,
    #[serde(flatten)]
    pub result: BenchResult,
}

#[derive(Debug, Serialize)]
#[serde(tag = "benchmark", rename_all = "kebab-case")]
pub enum BenchResult {
    Throughput(ThroughputReport),
    Memory(MemoryReport),
    DurableCreate(DurableCreateReport),
    ForwardedGet(ForwardedGetReport),
    Failover(FailoverReport),
}

/// The machine and build the figures come from.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_total_kib: u64,
    pub kernel: String,
    /// Build profile: `release` or `debug`. Figures from a debug build are
    /// not meaningful.
    pub build: &'static str,
    pub allocator: &'static str,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: field_after_colon(&cpuinfo, "model name")
                .unwrap_or("unknown")
                .to_owned(),
            memory_total_kib: field_after_colon(&meminfo, "MemTotal")
                .and_then(|value| value.trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|text| text.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            allocator: "system (the Rust default; glibc malloc on Linux)",
        }
    }
}

/// Reads the 1, 5 and 15 minute load averages from `/proc/loadavg`.
pub fn read_load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|field| field.parse().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

fn field_after_colon<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.split_once(':'))
        .map(|(_, value)| value.trim())
}

/// A measured figure beside the bound it is expected to meet.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Target {
    pub value: f64,
    pub target: f64,
    /// `>=` or `<=`: how `value` must compare with `target`.
    pub comparison: &'static str,
    pub met: bool,
}

impl Target {
    pub fn at_least(value: f64, target: f64) -> Self {
        Target {
            value,
            target,
            comparison: ">=",
            met: value >= target,
        }
    }

    pub fn at_most(value: f64, target: f64) -> Self {
        Target {
            value,
            target,
            comparison: "<=",
            met: value <= target,
        }
    }

    /// Formats the value with its bound, for example
    /// `0.85 (target >= 0.7: met)`.
    fn summary(&self, unit: &str) -> String {
        let verdict = if self.met { "met" } else { "missed" };
        format!(
            "{:.2}{unit} (target {} {}{unit}: {verdict})",
            self.value, self.comparison, self.target
        )
    }
}

/// The client side of the measured phases.
#[derive(Debug, Serialize)]
pub struct ClientSetup {
    pub concurrency: u32,
    pub connections_per_server: usize,
    pub workers_per_connection: u32,
    pub warmup_seconds: f64,
    /// Set when each operation ran for a fixed window.
    pub duration_seconds: Option<f64>,
    /// Set when each operation ran for a fixed number of requests.
    pub requests: Option<u64>,
}

impl ClientSetup {
    pub fn new(load: &LoadArgs, connections: usize) -> Self {
        ClientSetup {
            concurrency: load.concurrency,
            connections_per_server: connections,
            workers_per_connection: load.workers_per_connection,
            warmup_seconds: load.warmup.as_secs_f64(),
            duration_seconds: load
                .requests
                .is_none()
                .then_some(load.duration.as_secs_f64()),
            requests: load.requests,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ThroughputSetup {
    pub server: &'static str,
    #[serde(flatten)]
    pub clients: ClientSetup,
    pub operations: Vec<Operation>,
    pub get_rooms: u32,
    pub joins_per_room: u32,
    /// Room actors running on the roomd node when the last phase ended.
    pub live_rooms_at_end: usize,
}

impl ThroughputSetup {
    pub fn new(args: &ThroughputArgs, connections: usize, live_rooms_at_end: usize) -> Self {
        ThroughputSetup {
            server: "roomd (in-memory store) and the bare tonic reference, each in this process on its own 127.0.0.1 port, sharing one tokio runtime with the clients",
            clients: ClientSetup::new(&args.load, connections),
            operations: args.ops.clone(),
            get_rooms: args.get_rooms,
            joins_per_room: args.joins_per_room,
            live_rooms_at_end,
        }
    }
}

/// The figures of one operation against one server.
#[derive(Debug, Serialize)]
pub struct Phase {
    pub operation: &'static str,
    pub server: &'static str,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed_seconds: f64,
    pub requests_per_second: f64,
    pub latency_us: Latency,
    pub note: Option<String>,
}

/// Latency of successful requests in microseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

impl Phase {
    pub fn new(
        operation: &'static str,
        server: &'static str,
        outcome: &Outcome,
        note: Option<String>,
    ) -> Self {
        let latency = &outcome.latency;
        Phase {
            operation,
            server,
            requests: outcome.requests,
            errors: outcome.errors,
            first_error: outcome.first_error.clone(),
            elapsed_seconds: outcome.elapsed.as_secs_f64(),
            requests_per_second: outcome.requests_per_second(),
            latency_us: Latency {
                p50: latency.value_at_quantile(0.50),
                p99: latency.value_at_quantile(0.99),
                max: latency.max(),
                mean: latency.mean(),
            },
            note,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ThroughputReport {
    pub setup: ThroughputSetup,
    pub phases: Vec<Phase>,
    /// GetRoom requests per second of roomd divided by the bare handler's.
    pub get_ratio: Option<Target>,
}

#[derive(Debug, Serialize)]
pub struct MemoryReport {
    pub rooms: u32,
    pub warmup_rooms: u32,
    pub concurrency: u32,
    pub live_rooms: usize,
    pub stored_rooms: usize,
    pub create_seconds: f64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub rss_peak_kib: u64,
    pub kib_per_room: Target,
}

#[derive(Debug, Serialize)]
pub struct DurableCreateReport {
    pub clients: ClientSetup,
    pub redis: RedisSetup,
    pub create: Phase,
    /// Rooms in the node's set in Redis after the run, warm-up included.
    pub rooms_owned_by_node: u64,
    /// Calls per command (`INFO commandstats`) from the node's start to the
    /// end of the CreateRoom phase, divided by the rooms created, most
    /// frequent first. The node's start and heartbeats add a few calls.
    pub redis_calls_per_room: Vec<(String, f64)>,
    pub cpu: CpuUse,
    pub redis_benchmark: RedisBenchmark,
    /// CreateRoom requests per second over redis-benchmark's SET rate.
    pub create_ratio: Target,
}

/// CPU used during a load phase (warm-up and window), in cores: CPU
/// seconds divided by the phase's wall-clock seconds.
#[derive(Debug, Serialize)]
pub struct CpuUse {
    pub wall_seconds: f64,
    /// This process: the clients and the in-process roomd node.
    pub bench_cores: f64,
    pub redis_cores: f64,
}

#[derive(Debug, Serialize)]
pub struct ForwardedGetReport {
    pub clients: ClientSetup,
    pub redis: RedisSetup,
    /// Rooms that A created and owns, which GetRoom cycles through.
    pub rooms: u32,
    pub rooms_owned_by_a_after: u64,
    pub rooms_owned_by_b_after: u64,
    pub phases: Vec<Phase>,
    /// GetRoom requests per second through B over those through A.
    pub forwarded_ratio: f64,
    /// Redis calls (`INFO commandstats`) per GetRoom, from sequential
    /// requests sent after the measured phases.
    pub redis_calls_per_get_through_a: f64,
    pub redis_calls_per_get_through_b: f64,
}

#[derive(Debug, Serialize)]
pub struct FailoverReport {
    pub rooms: u32,
    pub node_ttl_seconds: u64,
    pub concurrency: u32,
    pub redis: RedisSetup,
    /// Time to create the rooms through node A.
    pub create_seconds: f64,
    /// Rooms that GetRoom succeeded for after the kill.
    pub served: usize,
    /// Seconds from the kill to the first, median and last room served.
    pub first_served_seconds: Option<f64>,
    pub median_served_seconds: Option<f64>,
    /// Unset when some room was still not served after --max-wait.
    pub all_served_seconds: Option<f64>,
    pub failed_attempts: u64,
    pub first_error: Option<String>,
    pub answered_by_b: u64,
    pub answered_by_c: u64,
    /// Rooms in each node's set in Redis after the poll.
    pub owners: Vec<NodeRooms>,
    pub log_dir: Option<String>,
    /// Seconds until every room was served, against the node TTL + 2 s.
    pub failover: Target,
}

#[derive(Debug, Serialize)]
pub struct NodeRooms {
    pub node: &'static str,
    pub node_id: String,
    pub rooms: u64,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report contains only serializable values")
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let machine = &self.machine;
        let _ = writeln!(
            out,
            "machine: {} CPUs ({}), {:.1} GiB memory, Linux {}, {} build, {} allocator",
            machine.cpus,
            machine.cpu_model,
            machine.memory_total_kib as f64 / (1024.0 * 1024.0),
            machine.kernel,
            machine.build,
            machine.allocator,
        );
        if let Some([one, five, fifteen]) = self.load_average_at_start {
            let _ = writeln!(
                out,
                "load average at start: {one:.2} {five:.2} {fifteen:.2} (1, 5, 15 min)"
            );
        }
        let _ = writeln!(
            out,
            "server logging: {}",
            self.server_log
                .as_deref()
                .map_or("off (no tracing subscriber)".to_owned(), |filter| format!(
                    "{filter}, to stderr"
                ))
        );
        if machine.build == "debug" {
            let _ = writeln!(
                out,
                "WARNING: built without optimizations; rebuild with --release for meaningful figures"
            );
        }
        match &self.result {
            BenchResult::Throughput(report) => write_throughput(&mut out, report),
            BenchResult::Memory(report) => write_memory(&mut out, report),
            BenchResult::DurableCreate(report) => write_durable_create(&mut out, report),
            BenchResult::ForwardedGet(report) => write_forwarded_get(&mut out, report),
            BenchResult::Failover(report) => write_failover(&mut out, report),
        }
        out
    }
}

fn write_throughput(out: &mut String, report: &ThroughputReport) {
    let setup = &report.setup;
    let _ = writeln!(out, "servers: {}", setup.server);
    write_clients(out, &setup.clients);
    write_phases(out, &report.phases);
    if let Some(ratio) = &report.get_ratio {
        let _ = writeln!(out);
        let _ = writeln!(out, "GetRoom roomd / bare tonic: {}", ratio.summary(""));
    }
}

fn write_clients(out: &mut String, setup: &ClientSetup) {
    let window = match (setup.requests, setup.duration_seconds) {
        (Some(requests), _) => format!("{requests} measured requests per operation"),
        (None, Some(seconds)) => format!("{seconds} s measured per operation"),
        (None, None) => String::new(),
    };
    let _ = writeln!(
        out,
        "clients: {} workers over {} HTTP/2 connections per server ({} workers per connection); warm-up {} s; {window}",
        setup.concurrency,
        setup.connections_per_server,
        setup.workers_per_connection,
        setup.warmup_seconds,
    );
}

fn write_phases(out: &mut String, phases: &[Phase]) {
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<11} {:<12} {:>10} {:>7} {:>10} {:>9} {:>9} {:>9}",
        "operation", "server", "requests", "errors", "req/s", "p50 µs", "p99 µs", "max µs"
    );
    for phase in phases {
        let _ = writeln!(
            out,
            "{:<11} {:<12} {:>10} {:>7} {:>10.0} {:>9} {:>9} {:>9}",
            phase.operation,
            phase.server,
            phase.requests,
            phase.errors,
            phase.requests_per_second,
            phase.latency_us.p50,
            phase.latency_us.p99,
            phase.latency_us.max,
        );
    }
    for phase in phases {
        if let Some(error) = &phase.first_error {
            let _ = writeln!(
                out,
                "{} {}: first error: {error}",
                phase.operation, phase.server
            );
        }
        if let Some(note) = &phase.note {
            let _ = writeln!(out, "{} {}: {note}", phase.operation, phase.server);
        }
    }
}

fn write_memory(out: &mut String, report: &MemoryReport) {
    let _ = writeln!(
        out,
        "method: RoomService::create in this process (no gRPC), {} concurrent tasks; VmRSS from /proc/self/status",
        report.concurrency
    );
    let _ = writeln!(
        out,
        "counts: each room's actor, its timer task, the in-memory store's copy of the room and its event log, and the registry's entries"
    );
    let _ = writeln!(out);
    let rows = [
        (
            "warm-up rooms (before the first reading)",
            report.warmup_rooms.to_string(),
        ),
        ("measured rooms", report.rooms.to_string()),
        ("room actors live", report.live_rooms.to_string()),
        ("rooms in the store", report.stored_rooms.to_string()),
        ("create time", format!("{:.2} s", report.create_seconds)),
        ("VmRSS before", format!("{} KiB", report.rss_before_kib)),
        ("VmRSS after", format!("{} KiB", report.rss_after_kib)),
        ("VmHWM (peak)", format!("{} KiB", report.rss_peak_kib)),
        (
            "resident memory per room",
            format!("{:.2} KiB", report.kib_per_room.value),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "{name:<42} {value:>14}");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "resident memory per room: {}",
        report.kib_per_room.summary(" KiB")
    );
}

fn write_redis(out: &mut String, redis: &RedisSetup) {
    let _ = writeln!(
        out,
        "redis: {} on 127.0.0.1, appendonly {}, appendfsync {}, save {:?}",
        redis.version, redis.appendonly, redis.appendfsync, redis.save
    );
}

fn write_durable_create(out: &mut String, report: &DurableCreateReport) {
    write_redis(out, &report.redis);
    let _ = writeln!(
        out,
        "servers: one clustered roomd node on the Redis store, in this process on 127.0.0.1, sharing one tokio runtime with the clients"
    );
    write_clients(out, &report.clients);
    write_phases(out, std::slice::from_ref(&report.create));
    let _ = writeln!(
        out,
        "rooms owned by the node in Redis after the run (warm-up included): {}",
        report.rooms_owned_by_node
    );
    let calls: Vec<String> = report
        .redis_calls_per_room
        .iter()
        .filter(|(_, per_room)| *per_room >= 0.01)
        .map(|(name, per_room)| format!("{name} {per_room:.2}"))
        .collect();
    let total: f64 = report.redis_calls_per_room.iter().map(|(_, n)| n).sum();
    let _ = writeln!(
        out,
        "Redis calls per room created: {total:.2} ({})",
        calls.join(", ")
    );
    let _ = writeln!(
        out,
        "CPU during the CreateRoom phase ({:.1} s with warm-up): roomd-bench (node and clients) {:.2} cores, redis-server {:.2} cores",
        report.cpu.wall_seconds, report.cpu.bench_cores, report.cpu.redis_cores
    );

    let reference = &report.redis_benchmark;
    let _ = writeln!(out);
    let _ = writeln!(out, "reference: {}", reference.command);
    let _ = writeln!(
        out,
        "{} {:.0} req/s, p50 {} ms, p99 {} ms, max {} ms",
        reference.test,
        reference.requests_per_second,
        reference.p50_ms,
        reference.p99_ms,
        reference.max_ms
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "CreateRoom roomd / redis-benchmark SET: {}",
        report.create_ratio.summary("")
    );
}

fn write_forwarded_get(out: &mut String, report: &ForwardedGetReport) {
    write_redis(out, &report.redis);
    let _ = writeln!(
        out,
        "servers: clustered roomd nodes A and B on one Redis, in this process, each with its own public and internal port on 127.0.0.1, sharing one tokio runtime with the clients"
    );
    write_clients(out, &report.clients);
    let _ = writeln!(
        out,
        "rooms: {} created on A; owned by A after the run: {}, by B: {}",
        report.rooms, report.rooms_owned_by_a_after, report.rooms_owned_by_b_after
    );
    write_phases(out, &report.phases);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "GetRoom through B (forwarded) / through A (owner): {:.2}",
        report.forwarded_ratio
    );
    let _ = writeln!(
        out,
        "Redis calls per GetRoom: {:.2} through A, {:.2} through B",
        report.redis_calls_per_get_through_a, report.redis_calls_per_get_through_b
    );
}

fn write_failover(out: &mut String, report: &FailoverReport) {
    write_redis(out, &report.redis);
    let _ = writeln!(
        out,
        "servers: three roomd processes A, B and C on one Redis, each logging at info to its own file, node TTL {} s; {} rooms created through A in {:.2} s; A killed with SIGKILL",
        report.node_ttl_seconds, report.rooms, report.create_seconds
    );
    let _ = writeln!(
        out,
        "poll: {} GetRoom workers, half through B and half through C",
        report.concurrency
    );
    let _ = writeln!(out);

    let seconds =
        |value: Option<f64>| value.map_or("-".to_owned(), |value| format!("{value:.2} s"));
    let rows = [
        (
            "rooms served after the kill",
            format!("{} of {}", report.served, report.rooms),
        ),
        ("first room served", seconds(report.first_served_seconds)),
        (
            "half of the rooms served",
            seconds(report.median_served_seconds),
        ),
        ("every room served", seconds(report.all_served_seconds)),
        (
            "failed GetRoom attempts",
            report.failed_attempts.to_string(),
        ),
        (
            "rooms first answered through B",
            report.answered_by_b.to_string(),
        ),
        (
            "rooms first answered through C",
            report.answered_by_c.to_string(),
        ),
    ];

    for (name, value) in rows {
        let _ = writeln!(out, "{name:<32} {value:>14}");
    }
    let _ = writeln!(out);

    let _ = writeln!(out, "rooms owned in Redis after the poll:");
    for owner in &report.owners {
        let _ = writeln!(
            out,
            "  {:<12} {:>8}  ({})",
            owner.node, owner.rooms, owner.node_id
        );
    }

    if let Some(error) = &report.first_error {
        let _ = writeln!(out, "first failed attempt: {error}");
    }
    if let Some(dir) = &report.log_dir {
        let _ = writeln!(out, "logs: {dir}");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "time from the kill until every room was served: {}",
        report.failover.summary(" s")
    );
}
