//! Flags of the `roomd` binary. Every flag can also be set through the
//! environment variable named beside it.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use roomd_actors::ServiceConfig;
use roomd_actors::registry::RestartPolicy;
use roomd_model::RoomDefaults;
use roomd_model::room::{MAX_PARTICIPANTS, MAX_TIMEOUT_SECS, MIN_PARTICIPANTS, MIN_TIMEOUT_SECS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Televisit room service: rooms, access lists, participants and timers
/// over gRPC.
#[derive(Debug, Clone, Parser)]
#[command(name = "roomd", version)]
pub struct Args {
    /// Address of the public gRPC API. Without authentication (which this
    /// build does not have yet) only loopback addresses are allowed, unless
    /// --insecure-no-auth is given.
    #[arg(long, env = "ROOMD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Serve a non-loopback address without authenticating callers. Every
    /// caller that can reach the port is then trusted.
    #[arg(long, env = "ROOMD_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,

    /// Default seconds from opening until a room closes unless someone joined.
    #[arg(long, env = "ROOMD_UNUSED_TIMEOUT", default_value_t = 300, value_parser = timeout_secs)]
    pub unused_timeout: u32,

    /// Default seconds from the last leave until an empty room closes.
    #[arg(long, env = "ROOMD_EMPTY_TIMEOUT", default_value_t = 300, value_parser = timeout_secs)]
    pub empty_timeout: u32,

    /// Default maximum duration of a room in seconds; no maximum when unset.
    #[arg(long, env = "ROOMD_MAX_DURATION", value_parser = timeout_secs)]
    pub max_duration: Option<u32>,

    /// Default maximum number of connected participants per room.
    #[arg(long, env = "ROOMD_MAX_PARTICIPANTS", default_value_t = MIN_PARTICIPANTS,
          value_parser = clap::value_parser!(u32).range(i64::from(MIN_PARTICIPANTS)..=i64::from(MAX_PARTICIPANTS)))]
    pub max_participants: u32,

    /// Seconds a closed room's actor keeps serving before it stops; reads of
    /// closed rooms then come from the store.
    #[arg(long, env = "ROOMD_CLOSED_LINGER", default_value_t = 10)]
    pub closed_linger: u64,

    /// Address to serve Prometheus metrics on, at /metrics; off when unset.
    #[arg(long, env = "ROOMD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Seconds that running requests get to finish after SIGINT or SIGTERM
    /// before their connections are closed.
    #[arg(long, env = "ROOMD_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,

    /// Redis URL (redis:// or rediss://) of the durable store that every
    /// node of a cluster shares. Without it the node runs alone on an
    /// in-memory store that is lost when it stops.
    #[arg(
        long,
        env = "ROOMD_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,

    /// Seconds a node's heartbeat lasts. A node that misses it is taken for
    /// dead: other nodes adopt its rooms, and it stops serving them itself.
    #[arg(long, env = "ROOMD_NODE_TTL", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub node_ttl: u64,

    /// Address of the internal gRPC API that other nodes forward requests
    /// to; used only with --redis-url.
    #[arg(long, env = "ROOMD_INTERNAL_LISTEN", default_value = "127.0.0.1:50052")]
    pub internal_listen: SocketAddr,

    /// Address (host:port) at which other nodes reach the internal API;
    /// the --internal-listen address when unset.
    #[arg(long, env = "ROOMD_ADVERTISE_ADDR", value_name = "HOST:PORT")]
    pub advertise_addr: Option<String>,

    /// Serve the roomd.v1.Chaos service, which kills this node's room
    /// actors and registry on request, for chaos tests. Never in production.
    #[arg(long, env = "ROOMD_ENABLE_CHAOS")]
    pub enable_chaos: bool,

    /// Log line format.
    #[arg(long, env = "ROOMD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax, for example `info` or
    /// `roomd_actors=debug,info`.
    #[arg(long, env = "ROOMD_LOG", default_value = "info")]
    pub log: String,
}

fn timeout_secs(text: &str) -> Result<u32, String> {
    let secs: u32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of seconds"))?;
    if (MIN_TIMEOUT_SECS..=MAX_TIMEOUT_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(format!(
            "{secs} s is outside {MIN_TIMEOUT_SECS} s to {MAX_TIMEOUT_SECS} s"
        ))
    }
}

impl Args {
    /// Checks what clap cannot check without printing the value: a
    /// `--redis-url` may carry a password, which clap's own message would
    /// repeat.
    pub fn check(&self) -> Result<(), String> {
        if let Some(url) = &self.redis_url {
            roomd_store::RedisConfig::check_url(url)
                .map_err(|message| format!("invalid --redis-url: {message}"))?;
        }
        Ok(())
    }
}

/// Everything a node needs to run, independent of how it was parsed.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub service: ServiceConfig,
    /// Serve non-loopback addresses without authentication.
    pub insecure_no_auth: bool,
    /// Time running requests get to finish once shutdown starts.
    pub shutdown_grace: Duration,
    /// Serve the fault-injection service.
    pub enable_chaos: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            service: ServiceConfig::default(),
            insecure_no_auth: false,
            shutdown_grace: Duration::from_secs(10),
            enable_chaos: false,
        }
    }
}

impl ServerConfig {
    /// Fails for a non-loopback address unless unauthenticated serving was
    /// asked for, since this build cannot authenticate callers.
    pub fn check_listen_address(&self, address: SocketAddr) -> Result<(), crate::ServerError> {
        if address.ip().is_loopback() || self.insecure_no_auth {
            Ok(())
        } else {
            Err(crate::ServerError::UnauthenticatedAddress(address))
        }
    }
}

impl From<&Args> for ServerConfig {
    fn from(args: &Args) -> Self {
        ServerConfig {
            service: ServiceConfig {
                defaults: RoomDefaults {
                    max_participants: args.max_participants,
                    unused_timeout: args.unused_timeout,
                    empty_timeout: args.empty_timeout,
                    max_duration: args.max_duration,
                },
                linger: Duration::from_secs(args.closed_linger),
                restart: RestartPolicy::default(),
            },
            insecure_no_auth: args.insecure_no_auth,
            shutdown_grace: Duration::from_secs(args.shutdown_grace),
            enable_chaos: args.enable_chaos,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_documentation() {
        let args = Args::try_parse_from(["roomd"]).unwrap();
        assert_eq!(args.listen, "127.0.0.1:50051".parse().unwrap());
        assert_eq!(args.unused_timeout, 300);
        assert_eq!(args.empty_timeout, 300);
        assert_eq!(args.log_format, LogFormat::Text);
    }

    #[test]
    fn redis_urls_are_checked_at_start() {
        let good = Args::try_parse_from(["roomd", "--redis-url", "redis://127.0.0.1:6379/2"]);
        assert_eq!(good.unwrap().check(), Ok(()));

        for bad in [
            "not a url",
            "http://127.0.0.1:6379",
            "rediss://127.0.0.1:6379",
        ] {
            let args = Args::try_parse_from(["roomd", "--redis-url", bad]).unwrap();
            let message = args.check().unwrap_err();
            assert!(
                message.starts_with("invalid --redis-url"),
                "{bad}: {message}"
            );
        }

        let secret = "redis://:s3cret@127.0.0.1:99999";
        let message = Args::try_parse_from(["roomd", "--redis-url", secret])
            .unwrap()
            .check()
            .unwrap_err();
        assert!(
            !message.contains("s3cret"),
            "the password leaked: {message}"
        );
    }

    #[test]
    fn timeouts_out_of_range_are_rejected() {
        assert!(Args::try_parse_from(["roomd", "--unused-timeout", "0"]).is_err());
        assert!(Args::try_parse_from(["roomd", "--empty-timeout", "86401"]).is_err());
        assert!(Args::try_parse_from(["roomd", "--max-participants", "1"]).is_err());
        assert!(Args::try_parse_from(["roomd", "--log-format", "xml"]).is_err());
    }
}
