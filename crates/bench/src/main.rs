//! `roomd-bench`: the load generator behind `docs/benchmarks.md`.
//!
//! - [`cli`]: flags and subcommands.
//! - [`throughput`]: CreateRoom, GetRoom and JoinRoom over gRPC on loopback
//!   against a roomd node in this process, with [`reference`], a bare tonic
//!   GetRoom handler, measured in the same run.
//! - [`memory`]: resident memory per open room.
//! - [`durable`]: CreateRoom on a clustered node over Redis, against
//!   `redis-benchmark -t set` on the same Redis.
//! - [`forwarded`]: GetRoom through the owning node and through a node
//!   that forwards it.
//! - [`failover`]: time until the rooms of a killed node are served again.
//! - [`load`]: the closed-loop driver and its latency histograms.
//! - [`client`]: gRPC connections and the GetRoom and CreateRoom workers.
//! - [`node`]: a roomd node in this process.
//! - [`redis_server`]: the redis-server the cluster benchmarks start.
//! - [`rooms`]: the rooms the benchmarks create.
//! - [`report`]: results as a table or as JSON.
//!
//! Every server listens on 127.0.0.1 only. roomd nodes run in this process,
//! except in `failover`, which starts the roomd binary three times.
//! redis-server and redis-benchmark run as child processes. Every run ends
//! after its duration, request count or `--max-wait`.

mod cli;
mod client;
mod durable;
mod failover;
mod forwarded;
mod load;
mod memory;
mod node;
mod redis_server;
mod reference;
mod report;
mod rooms;
mod throughput;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::report::{BenchResult, Machine, Report};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(filter) = &cli.log {
        match EnvFilter::try_new(filter) {
            Ok(filter) => tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .init(),
            Err(e) => {
                eprintln!("roomd-bench: invalid --log filter {filter:?}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    let load_average = report::read_load_average();
    let result = match &cli.command {
        Command::Throughput(args) => throughput::run(args).await.map(BenchResult::Throughput),
        Command::Memory(args) => memory::run(args).await.map(BenchResult::Memory),
        Command::DurableCreate(args) => durable::run(args).await.map(BenchResult::DurableCreate),
        Command::ForwardedGet(args) => forwarded::run(args).await.map(BenchResult::ForwardedGet),
        Command::Failover(args) => failover::run(args).await.map(BenchResult::Failover),
    };
    let result = match result {
        Ok(result) => result,
        Err(message) => {
            eprintln!("roomd-bench: {message}");
            return ExitCode::FAILURE;
        }
    };

    let report = Report {
        machine: Machine::read(),
        load_average_at_start: load_average,
        server_log: cli.log.clone(),
        result,
    };
    if cli.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    ExitCode::SUCCESS
}
