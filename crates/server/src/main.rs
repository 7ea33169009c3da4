//! The `roomd` binary: parses flags, installs logging, and serves a node
//! until SIGINT or SIGTERM: alone on the in-memory store, or, with
//! `--redis-url`, as one node of a cluster on the Redis store.

use std::io::IsTerminal;
use std::process::ExitCode;

use std::sync::Arc;

use clap::Parser;
use roomd_cluster::ClusterConfig;
use roomd_server::{Args, LogFormat, RoomdServer, ServerConfig};
use roomd_store::{RedisConfig, RedisStore};
use tokio::net::TcpListener;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(message) = args.check() {
        eprintln!("roomd: {message}");
        return ExitCode::from(2);
    }
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
    let shutdown = shutdown_signal()?;
    let config = ServerConfig::from(&args);
    config
        .check_listen_address(args.listen)
        .map_err(|e| e.to_string())?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    if let Some(address) = args.metrics_listen {
        roomd_server::metrics::serve(address)
            .map_err(|e| format!("cannot serve metrics on {address}: {e}"))?;
        info!(%address, "metrics listening");
    }
    let server = match &args.redis_url {
        None => RoomdServer::start_in_memory(config).await,
        Some(url) => start_clustered(&args, url, config).await?,
    }
    .map_err(|e| e.to_string())?;
    server
        .serve(listener, shutdown)
        .await
        .map_err(|e| e.to_string())
}

/// Connects to Redis and joins the cluster of the nodes that share it.
async fn start_clustered(
    args: &Args,
    url: &str,
    config: ServerConfig,
) -> Result<Result<RoomdServer, roomd_server::ServerError>, String> {
    config
        .check_listen_address(args.internal_listen)
        .map_err(|e| e.to_string())?;
    let internal = TcpListener::bind(args.internal_listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.internal_listen))?;
    let advertise_address = match &args.advertise_addr {
        Some(address) => address.clone(),
        None => internal
            .local_addr()
            .map_err(|e| format!("cannot read the internal address: {e}"))?
            .to_string(),
    };
    let store = RedisStore::connect(RedisConfig::new(url))
        .await
        .map_err(|e| e.to_string())?;
    let cluster = ClusterConfig {
        node_ttl: std::time::Duration::from_secs(args.node_ttl),
        advertise_address,
    };
    Ok(RoomdServer::start_clustered(config, Arc::new(store), cluster, internal).await)
}

fn install_tracing(args: &Args) -> Result<(), String> {
    let filter = EnvFilter::try_new(&args.log)
        .map_err(|e| format!("invalid --log filter {:?}: {e}", args.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now, so that a signal arriving
/// while the node starts is not lost, and returns a future that completes on
/// the first of them.
fn shutdown_signal() -> Result<impl Future<Output = ()>, String> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot listen for SIGINT: {e}"))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => info!("SIGINT received"),
            _ = terminate.recv() => info!("SIGTERM received"),
        }
    })
}
