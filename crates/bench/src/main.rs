//! `roomd-bench`: the load generator behind `docs/benchmarks.md`.
//!
//! - [`cli`]: flags and subcommands.
//! - [`throughput`]: CreateRoom, GetRoom and JoinRoom over gRPC on loopback
//!   against a roomd node in this process, with [`reference`], a bare tonic
//!   GetRoom handler, measured in the same run.
//! - [`memory`]: resident memory per open room.
//! - [`load`]: the closed-loop driver and its latency histograms.
//! - [`rooms`]: the rooms the benchmarks create.
//! - [`report`]: results as a table or as JSON.
//!
//! Every server runs in this process on 127.0.0.1, and every run ends after
//! its duration or request count.

mod cli;
mod load;
mod memory;
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

    let result = match &cli.command {
        Command::Throughput(args) => throughput::run(args).await.map(BenchResult::Throughput),
        Command::Memory(args) => memory::run(args).await.map(BenchResult::Memory),
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
