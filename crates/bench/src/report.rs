//! Results of the benchmarks, printed as a table or as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli::{Operation, ThroughputArgs};
use crate::load::Outcome;

/// The whole output of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    /// Filter of the tracing subscriber given with `--log`. Without one the
    /// server formats and writes no logs.
    pub server_log: Option<String>,
    #[serde(flatten)]
    pub result: BenchResult,
}

#[derive(Debug, Serialize)]
#[serde(tag = "benchmark", rename_all = "lowercase")]
pub enum BenchResult {
    Throughput(ThroughputReport),
    Memory(MemoryReport),
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

#[derive(Debug, Serialize)]
pub struct ThroughputSetup {
    pub server: &'static str,
    pub concurrency: u32,
    pub connections_per_server: usize,
    pub workers_per_connection: u32,
    pub warmup_seconds: f64,
    /// Set when each operation ran for a fixed window.
    pub duration_seconds: Option<f64>,
    /// Set when each operation ran for a fixed number of requests.
    pub requests: Option<u64>,
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
            concurrency: args.concurrency,
            connections_per_server: connections,
            workers_per_connection: args.workers_per_connection,
            warmup_seconds: args.warmup.as_secs_f64(),
            duration_seconds: args
                .requests
                .is_none()
                .then_some(args.duration.as_secs_f64()),
            requests: args.requests,
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
        }
        out
    }
}

fn write_throughput(out: &mut String, report: &ThroughputReport) {
    let setup = &report.setup;
    let _ = writeln!(out, "servers: {}", setup.server);
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
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<11} {:<11} {:>10} {:>7} {:>10} {:>9} {:>9} {:>9}",
        "operation", "server", "requests", "errors", "req/s", "p50 µs", "p99 µs", "max µs"
    );
    for phase in &report.phases {
        let _ = writeln!(
            out,
            "{:<11} {:<11} {:>10} {:>7} {:>10.0} {:>9} {:>9} {:>9}",
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
    for phase in &report.phases {
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
    if let Some(ratio) = &report.get_ratio {
        let _ = writeln!(out);
        let _ = writeln!(out, "GetRoom roomd / bare tonic: {}", ratio.summary(""));
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
