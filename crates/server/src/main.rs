//! The `roomd` binary: parses flags, installs logging, and serves a node on
//! the in-memory store until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use roomd_server::{Args, LogFormat, RoomdServer, ServerConfig};
use tokio::net::TcpListener;
use tracing::error;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(message) = install_tracing(&args) {
        eprintln!("roomd: {message}");
        return ExitCode::FAILURE;
    }

    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!(error = %message, "roomd failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let config = ServerConfig::from(&args);
    config
        .check_listen_address(args.listen)
        .map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let server = RoomdServer::start_in_memory(config)
        .await
        .map_err(|e| e.to_string())?;
    server
        .serve(listener, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

fn install_tracing(args: &Args) -> Result<(), String> {
    let filter = EnvFilter::try_new(&args.log)
        .map_err(|e| format!("invalid --log filter {:?}: {e}", args.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops roomd");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
