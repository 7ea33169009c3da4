//! `roomd-chaos`: runs the chaos suite against a fresh local cluster, or
//! checks a history written by an earlier run.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use roomd_chaos::run::{RunConfig, run};
use roomd_chaos::{checker, history, report};
use tracing_subscriber::EnvFilter;

/// Chaos suite for roomd: a randomized workload against a real local
/// cluster (Redis and roomd processes on loopback ports), faults injected
/// while it runs, and a check of every invariant from the recorded history.
/// Exits with 1 when the check finds a violation, and 2 when the run
/// itself failed.
#[derive(Debug, Parser)]
#[command(name = "roomd-chaos", version)]
struct Args {
    /// Number of roomd nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(2..=9))]
    nodes: u64,

    /// How long the workload and the nemesis run, such as 120s or 30m.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    duration: Duration,

    /// Seed of the requests and faults; a random one when unset. The
    /// summary prints it, so a run can be repeated.
    #[arg(long)]
    seed: Option<u64>,

    /// Concurrent clients sending requests.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=256))]
    clients: u32,

    /// Concurrent watchers following rooms' events.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=64))]
    watchers: u32,

    /// Node heartbeat TTL in seconds (roomd --node-ttl).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=30))]
    node_ttl: u64,

    /// Mean pause between faults, such as 5s.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    fault_gap: Duration,

    /// Minimum number of faults of every kind the schedule must contain;
    /// the run fails before it starts otherwise. CI sets it to 2.
    #[arg(long, default_value_t = 0)]
    require_each_fault: usize,

    /// maxOpenRooms of the limited org.
    #[arg(long, default_value_t = 20)]
    max_open_rooms: u32,

    /// Path of the history file (JSON lines); target/chaos/history-SEED.jsonl
    /// when unset.
    #[arg(long)]
    history: Option<PathBuf>,

    /// Check the history in this file instead of running.
    #[arg(long, value_name = "HISTORY", conflicts_with = "seed")]
    check: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("ROOMD_CHAOS_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();

    let result = match &args.check {
        Some(path) => check_file(path),
        None => run_once(&args).await,
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(message) => {
            eprintln!("roomd-chaos: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run_once(args: &Args) -> Result<usize, String> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let config = RunConfig {
        seed,
        nodes: args.nodes as usize,
        duration: args.duration,
        clients: args.clients,
        watchers: args.watchers,
        node_ttl: Duration::from_secs(args.node_ttl),
        mean_fault_gap: args.fault_gap,
        max_open_rooms: args.max_open_rooms,
        require_each_fault: args.require_each_fault,
        history: args
            .history
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("target/chaos/history-{seed}.jsonl"))),
    };
    let outcome = run(&config).await?;
    println!("seed: {seed}");
    print!("{}", report::summary(&outcome.entries, &outcome.violations));
    println!("history: {}", config.history.display());
    Ok(outcome.violations.len())
}

fn check_file(path: &std::path::Path) -> Result<usize, String> {
    let entries = history::read(path)?;
    let violations = checker::check(&entries)?;
    print!("{}", report::summary(&entries, &violations));
    Ok(violations.len())
}
