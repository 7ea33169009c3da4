//! The `roomd` binary: parses flags, installs logging, and serves a node
//! until SIGINT or SIGTERM: alone on the in-memory store, or, with
//! `--redis-url`, as one node of a cluster on the Redis store.

use std::io::IsTerminal;
use std::process::ExitCode;

use std::sync::Arc;

use clap::Parser;
use roomd_cluster::ClusterConfig;
use roomd_server::{Args, LogFormat, RoomdServer, ServerConfig, ServerError};
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
    let security = match args.load_security() {
        Ok(security) => security,
        Err(error) => {
            eprintln!("roomd: {error}");
            return ExitCode::from(2);
        }
    };
    let config = ServerConfig::from(&args).with_security(security);
    if let Err(error) = check_addresses(&args, &config) {
        eprintln!("roomd: {error}");
        return ExitCode::from(2);
    }
    if let Err(message) = install_tracing(&args) {
        eprintln!("roomd: {message}");
        return ExitCode::FAILURE;
    }

    match run(args, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!(error = %message, "roomd failed");
            ExitCode::FAILURE
        }
    }
}

/// Rejects listening addresses that would serve unauthenticated callers
/// beyond loopback, before anything starts.
fn check_addresses(args: &Args, config: &ServerConfig) -> Result<(), ServerError> {
    config.check_public_address(args.listen)?;
    if args.redis_url.is_some() {
        config.check_internal_address(args.internal_listen)?;
    }
    Ok(())
}

async fn run(args: Args, config: ServerConfig) -> Result<(), String> {
    let shutdown = shutdown_signal()?;
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
) -> Result<Result<RoomdServer, ServerError>, String> {
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
    let store = RedisStore::connect(redis_config(args, url)?)
        .await
        .map_err(|e| e.to_string())?;
    let cluster = ClusterConfig {
        node_ttl: std::time::Duration::from_secs(args.node_ttl),
        advertise_address,
    };
    Ok(RoomdServer::start_clustered(config, Arc::new(store), cluster, internal).await)
}

/// Builds the Redis settings: the URL, and the password and CA files.
fn redis_config(args: &Args, url: &str) -> Result<RedisConfig, String> {
    let mut config = RedisConfig::new(url);
    if let Some(path) = &args.redis_password_file {
        let password = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --redis-password-file {}: {e}", path.display()))?;
        config.password = Some(password.trim_end_matches(['\r', '\n']).to_owned());
    }
    if let Some(path) = &args.redis_ca {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read --redis-ca {}: {e}", path.display()))?;
        config.ca_certificate = Some(pem);
    }
    Ok(config)
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
