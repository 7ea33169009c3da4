//! Flags of the `roomd` binary. Every flag can also be set through the
//! environment variable named beside it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::builder::{BoolishValueParser, RangedU64ValueParser};
use clap::{Args as ClapArgs, Parser, ValueEnum};
use roomd_actors::ServiceConfig;
use roomd_actors::registry::RestartPolicy;
use roomd_model::limits::{MAX_FILTER_DEPTH, MAX_LABEL_CHARS, MAX_PAGE_SIZE};
use roomd_model::room::{MAX_PARTICIPANTS, MAX_TIMEOUT_SECS, MIN_PARTICIPANTS, MIN_TIMEOUT_SECS};
use roomd_model::{Limits, RoomDefaults};

use crate::auth::jwt::JwtValidator;
use crate::auth::tls::{ClientCertificates, TlsSettings};
use crate::auth::tokens::{self, ServiceTokens};
use crate::auth::{AuthConfigError, Authenticator};

/// Help heading of the authentication and TLS flags.
const SECURITY: &str = "Authentication and TLS";

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
    /// Address of the public gRPC API. Without caller authentication
    /// (--service-tokens-file, --jwt-*, --tls-client-ca) only loopback
    /// addresses are allowed, unless --insecure-no-auth is given.
    #[arg(long, env = "ROOMD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Serve a non-loopback address without authenticating callers (or,
    /// on the internal port, nodes). Every caller that can reach the port
    /// is then trusted.
    #[arg(long, env = "ROOMD_INSECURE_NO_AUTH", value_parser = BoolishValueParser::new(), help_heading = SECURITY)]
    pub insecure_no_auth: bool,

    /// PEM certificate chain that the public and the internal port serve
    /// TLS with; needs --tls-key.
    #[arg(long, env = "ROOMD_TLS_CERT", value_name = "FILE", requires = "tls_key", help_heading = SECURITY)]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "ROOMD_TLS_KEY", value_name = "FILE", requires = "tls_cert", help_heading = SECURITY)]
    pub tls_key: Option<PathBuf>,

    /// PEM CA bundle: a client certificate it issued authenticates the
    /// caller as a service. Clients without a certificate may still use a
    /// bearer token. Needs --tls-cert.
    #[arg(long, env = "ROOMD_TLS_CLIENT_CA", value_name = "FILE", requires = "tls_cert", help_heading = SECURITY)]
    pub tls_client_ca: Option<PathBuf>,

    /// PEM CA bundle that the other nodes' --tls-cert is checked against
    /// when this node forwards a request; needed with --tls-cert and
    /// --redis-url.
    #[arg(long, env = "ROOMD_TLS_PEER_CA", value_name = "FILE", help_heading = SECURITY)]
    pub tls_peer_ca: Option<PathBuf>,

    /// File of named service tokens, one `NAME TOKEN` line each, accepted
    /// as `authorization: Bearer TOKEN`.
    #[arg(long, env = "ROOMD_SERVICE_TOKENS_FILE", value_name = "FILE", help_heading = SECURITY)]
    pub service_tokens_file: Option<PathBuf>,

    /// File with the HS256 secret (at least 32 bytes) that JWTs may be
    /// signed with.
    #[arg(long, env = "ROOMD_JWT_SECRET_FILE", value_name = "FILE", help_heading = SECURITY)]
    pub jwt_secret_file: Option<PathBuf>,

    /// PEM public key that JWTs may be signed with: RSA for RS256, P-256
    /// for ES256. May be repeated.
    #[arg(long, env = "ROOMD_JWT_PUBLIC_KEY_FILE", value_name = "FILE", value_delimiter = ',', help_heading = SECURITY)]
    pub jwt_public_key_file: Vec<PathBuf>,

    /// Audience (`aud`) that a JWT must name; required with a JWT key.
    #[arg(long, env = "ROOMD_JWT_AUDIENCE", value_name = "AUDIENCE", help_heading = SECURITY)]
    pub jwt_audience: Option<String>,

    /// Issuer (`iss`) that a JWT must name; any issuer when unset.
    #[arg(long, env = "ROOMD_JWT_ISSUER", value_name = "ISSUER", help_heading = SECURITY)]
    pub jwt_issuer: Option<String>,

    /// File with the token that nodes present to each other's internal
    /// port; the same file on every node. Without it the internal port
    /// trusts every caller and serves loopback addresses only.
    #[arg(long, env = "ROOMD_NODE_TOKEN_FILE", value_name = "FILE", help_heading = SECURITY)]
    pub node_token_file: Option<PathBuf>,

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

    /// File with the Redis password, used instead of a password in
    /// --redis-url.
    #[arg(long, env = "ROOMD_REDIS_PASSWORD_FILE", value_name = "FILE")]
    pub redis_password_file: Option<PathBuf>,

    /// PEM CA bundle that a rediss:// server's certificate is checked
    /// against, instead of the system's trusted roots.
    #[arg(long, env = "ROOMD_REDIS_CA", value_name = "FILE")]
    pub redis_ca: Option<PathBuf>,

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
    #[arg(long, env = "ROOMD_ENABLE_CHAOS", value_parser = BoolishValueParser::new())]
    pub enable_chaos: bool,

    /// Log line format.
    #[arg(long, env = "ROOMD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax, for example `info` or
    /// `roomd_actors=debug,info`.
    #[arg(long, env = "ROOMD_LOG", default_value = "info")]
    pub log: String,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Flags of the limits on requests; the defaults are those of
/// [`Limits::default`].
#[derive(Debug, Clone, ClapArgs)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Maximum size of a request message, in bytes. A larger one gets
    /// `limit.requestSize`.
    #[arg(long, env = "ROOMD_MAX_REQUEST_BYTES", default_value_t = Limits::default().max_request_bytes,
          value_parser = at_least_one::<usize>)]
    pub max_request_bytes: usize,

    /// Maximum number of characters in a room label, 1 to 200.
    #[arg(long, env = "ROOMD_MAX_LABEL_CHARS", default_value_t = Limits::default().max_label_chars,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_LABEL_CHARS as u64))]
    pub max_label_chars: usize,

    /// Maximum number of entries in a room's ACL.
    #[arg(long, env = "ROOMD_MAX_ACL_ENTRIES", default_value_t = Limits::default().max_acl_entries,
          value_parser = at_least_one::<usize>)]
    pub max_acl_entries: usize,

    /// Maximum number of custom (c_*) properties set on one room.
    #[arg(long, env = "ROOMD_MAX_CUSTOM_PROPERTIES", default_value_t = Limits::default().max_custom_properties,
          value_parser = at_least_one::<usize>)]
    pub max_custom_properties: usize,

    /// Maximum number of characters in one custom string value or array
    /// item.
    #[arg(long, env = "ROOMD_MAX_CUSTOM_VALUE_CHARS", default_value_t = Limits::default().max_custom_value_chars,
          value_parser = at_least_one::<usize>)]
    pub max_custom_value_chars: usize,

    /// Maximum number of items in one custom array value.
    #[arg(long, env = "ROOMD_MAX_CUSTOM_ARRAY_ITEMS", default_value_t = Limits::default().max_custom_array_items,
          value_parser = at_least_one::<usize>)]
    pub max_custom_array_items: usize,

    /// Maximum $and/$or nesting depth of a FindRooms filter, 1 to 16.
    #[arg(long, env = "ROOMD_MAX_FILTER_DEPTH", default_value_t = Limits::default().max_filter_depth,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_FILTER_DEPTH as u64))]
    pub max_filter_depth: usize,

    /// Maximum number of JSON values (objects, arrays and scalars) in a
    /// FindRooms filter.
    #[arg(long, env = "ROOMD_MAX_FILTER_NODES", default_value_t = Limits::default().max_filter_nodes,
          value_parser = at_least_one::<usize>)]
    pub max_filter_nodes: usize,

    /// Maximum FindRooms page size, in rooms, 1 to 1000.
    #[arg(long, env = "ROOMD_MAX_PAGE_SIZE", default_value_t = Limits::default().max_page_size,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_SIZE)))]
    pub max_page_size: u32,

    /// Maximum number of open watches of one room on this node.
    #[arg(long, env = "ROOMD_MAX_WATCHERS_PER_ROOM", default_value_t = Limits::default().max_watchers_per_room,
          value_parser = at_least_one::<usize>)]
    pub max_watchers_per_room: usize,

    /// Maximum number of open watches of one caller (org and account) on
    /// this node.
    #[arg(long, env = "ROOMD_MAX_WATCHERS_PER_CALLER", default_value_t = Limits::default().max_watchers_per_caller,
          value_parser = at_least_one::<usize>)]
    pub max_watchers_per_caller: usize,

    /// Requests per second that one caller (org and account) may make to
    /// this node's public port, on average.
    #[arg(long, env = "ROOMD_RATE_LIMIT", default_value_t = Limits::default().requests_per_second,
          value_parser = at_least_one::<u32>)]
    pub rate_limit: u32,

    /// Requests that one caller may make at once before --rate-limit
    /// applies.
    #[arg(long, env = "ROOMD_RATE_BURST", default_value_t = Limits::default().request_burst,
          value_parser = at_least_one::<u32>)]
    pub rate_burst: u32,
}

/// Parses a whole number of at least 1, for limits without an upper bound.
fn at_least_one<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
    T::Err: std::fmt::Display,
{
    match text.parse::<T>() {
        Ok(value) if value >= T::from(1) => Ok(value),
        Ok(_) => Err("must be at least 1".into()),
        Err(error) => Err(format!("must be a whole number of at least 1: {error}")),
    }
}

impl From<&LimitArgs> for Limits {
    fn from(args: &LimitArgs) -> Self {
        Limits {
            max_request_bytes: args.max_request_bytes,
            max_label_chars: args.max_label_chars,
            max_acl_entries: args.max_acl_entries,
            max_custom_properties: args.max_custom_properties,
            max_custom_value_chars: args.max_custom_value_chars,
            max_custom_array_items: args.max_custom_array_items,
            max_filter_depth: args.max_filter_depth,
            max_filter_nodes: args.max_filter_nodes,
            max_page_size: args.max_page_size,
            max_watchers_per_room: args.max_watchers_per_room,
            max_watchers_per_caller: args.max_watchers_per_caller,
            requests_per_second: args.rate_limit,
            request_burst: args.rate_burst,
        }
    }
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

    /// Loads the credentials and TLS settings the flags name. The error
    /// names the flag and the file, never a secret.
    pub fn load_security(&self) -> Result<Security, AuthConfigError> {
        let service_tokens = self
            .service_tokens_file
            .as_deref()
            .map(ServiceTokens::load)
            .transpose()?;
        let jwt = self.load_jwt()?;
        let client_certificates = self
            .tls_client_ca
            .as_deref()
            .map(ClientCertificates::load)
            .transpose()?;
        let node_token = self
            .node_token_file
            .as_deref()
            .map(|path| tokens::load_single(path, "--node-token-file"))
            .transpose()?;

        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Some(TlsSettings::load(cert, key, client_certificates.as_ref())?)
            }
            _ => None,
        };
        if tls.is_some() && self.redis_url.is_some() && self.tls_peer_ca.is_none() {
            return Err(AuthConfigError::Usage(
                "--tls-cert with --redis-url needs --tls-peer-ca, the CA that checks the other nodes' certificates".into(),
            ));
        }
        let peer_tls = self
            .tls_peer_ca
            .as_deref()
            .map(|path| {
                let pem = std::fs::read(path).map_err(|source| AuthConfigError::Read {
                    flag: "--tls-peer-ca",
                    path: path.display().to_string(),
                    source,
                })?;
                let ca = tonic::transport::Certificate::from_pem(pem);
                Ok::<_, AuthConfigError>(
                    tonic::transport::ClientTlsConfig::new().ca_certificate(ca),
                )
            })
            .transpose()?;
        Ok(Security {
            authenticator: Authenticator::new(service_tokens, jwt, client_certificates, node_token),
            tls,
            peer_tls,
        })
    }

    fn load_jwt(&self) -> Result<Option<JwtValidator>, AuthConfigError> {
        if self.jwt_secret_file.is_none() && self.jwt_public_key_file.is_empty() {
            return Ok(None);
        }
        let Some(audience) = self.jwt_audience.as_deref().filter(|a| !a.is_empty()) else {
            return Err(AuthConfigError::Usage(
                "--jwt-secret-file and --jwt-public-key-file need --jwt-audience".into(),
            ));
        };
        JwtValidator::load(
            self.jwt_secret_file.as_deref(),
            &self.jwt_public_key_file,
            audience,
            self.jwt_issuer.as_deref(),
        )
        .map(Some)
    }
}

/// The credentials and TLS settings loaded from the flags.
#[derive(Debug)]
pub struct Security {
    pub authenticator: Authenticator,
    pub tls: Option<TlsSettings>,
    pub peer_tls: Option<tonic::transport::ClientTlsConfig>,
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
    /// Credentials accepted on both ports.
    pub authenticator: Arc<Authenticator>,
    /// TLS of both ports; plain HTTP/2 when unset.
    pub tls: Option<TlsSettings>,
    /// TLS settings for reaching the other nodes' internal port; plain
    /// HTTP/2 when unset.
    pub peer_tls: Option<tonic::transport::ClientTlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            service: ServiceConfig::default(),
            insecure_no_auth: false,
            shutdown_grace: Duration::from_secs(10),
            enable_chaos: false,
            authenticator: Arc::new(Authenticator::default()),
            tls: None,
            peer_tls: None,
        }
    }
}

impl ServerConfig {
    /// Serves with the credentials and TLS settings of `security`.
    pub fn with_security(mut self, security: Security) -> Self {
        self.authenticator = Arc::new(security.authenticator);
        self.tls = security.tls;
        self.peer_tls = security.peer_tls;
        self
    }

    /// Fails for a non-loopback public address unless callers are
    /// authenticated or unauthenticated serving was asked for.
    pub fn check_public_address(&self, address: SocketAddr) -> Result<(), crate::ServerError> {
        self.check_address(
            address,
            self.authenticator.authenticates_callers(),
            "public",
            "caller credentials (--service-tokens-file, --jwt-* or --tls-client-ca)",
        )
    }

    /// Fails for a non-loopback internal address unless nodes are
    /// authenticated or unauthenticated serving was asked for.
    pub fn check_internal_address(&self, address: SocketAddr) -> Result<(), crate::ServerError> {
        self.check_address(
            address,
            self.authenticator.authenticates_nodes(),
            "internal",
            "a node token (--node-token-file)",
        )
    }

    fn check_address(
        &self,
        address: SocketAddr,
        authenticated: bool,
        port: &'static str,
        credentials: &'static str,
    ) -> Result<(), crate::ServerError> {
        if address.ip().is_loopback() || authenticated || self.insecure_no_auth {
            Ok(())
        } else {
            Err(crate::ServerError::UnauthenticatedAddress {
                port,
                address,
                credentials,
            })
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
                limits: Limits::from(&args.limits),
                linger: Duration::from_secs(args.closed_linger),
                restart: RestartPolicy::default(),
            },
            insecure_no_auth: args.insecure_no_auth,
            shutdown_grace: Duration::from_secs(args.shutdown_grace),
            enable_chaos: args.enable_chaos,
            authenticator: Arc::new(Authenticator::default()),
            tls: None,
            peer_tls: None,
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
        assert_eq!(Limits::from(&args.limits), Limits::default());
    }

    #[test]
    fn limit_flags_at_and_over_their_bounds() {
        let parse = |flag: &str, value: &str| Args::try_parse_from(["roomd", flag, value]);
        assert_eq!(
            parse("--max-label-chars", "200")
                .unwrap()
                .limits
                .max_label_chars,
            200
        );
        assert!(parse("--max-label-chars", "201").is_err());
        assert!(parse("--max-page-size", "1000").is_ok());
        assert!(parse("--max-page-size", "1001").is_err());
        assert!(parse("--max-filter-depth", "16").is_ok());
        assert!(parse("--max-filter-depth", "17").is_err());
        for flag in [
            "--max-request-bytes",
            "--max-acl-entries",
            "--max-custom-properties",
            "--max-custom-value-chars",
            "--max-custom-array-items",
            "--max-filter-nodes",
            "--max-watchers-per-room",
            "--max-watchers-per-caller",
            "--rate-limit",
            "--rate-burst",
        ] {
            assert!(parse(flag, "1").is_ok(), "{flag} 1");
            assert!(parse(flag, "0").is_err(), "{flag} 0");
        }
        let lowered = parse("--rate-limit", "7").unwrap();
        assert_eq!(Limits::from(&lowered.limits).requests_per_second, 7);
    }

    #[test]
    fn redis_urls_are_checked_at_start() {
        let good = Args::try_parse_from(["roomd", "--redis-url", "redis://127.0.0.1:6379/2"]);
        assert_eq!(good.unwrap().check(), Ok(()));

        let tls = Args::try_parse_from(["roomd", "--redis-url", "rediss://127.0.0.1:6379"]);
        assert_eq!(tls.unwrap().check(), Ok(()));

        for bad in ["not a url", "http://127.0.0.1:6379"] {
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
    fn unspecified_address_needs_authentication() {
        // 0.0.0.0 stands for every interface; the check only reads it.
        let everywhere: SocketAddr = "0.0.0.0:50051".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:50051".parse().unwrap();

        let open = ServerConfig::default();
        assert!(open.check_public_address(loopback).is_ok());
        assert!(open.check_internal_address(loopback).is_ok());
        assert!(open.check_public_address(everywhere).is_err());
        assert!(open.check_internal_address(everywhere).is_err());

        let tokens = ServiceTokens::parse("scheduler 0123456789abcdef-token").unwrap();
        let callers = ServerConfig {
            authenticator: Arc::new(Authenticator::new(Some(tokens), None, None, None)),
            ..ServerConfig::default()
        };
        assert!(callers.check_public_address(everywhere).is_ok());
        assert!(callers.check_internal_address(everywhere).is_err());

        let insecure = ServerConfig {
            insecure_no_auth: true,
            ..ServerConfig::default()
        };
        assert!(insecure.check_public_address(everywhere).is_ok());
        assert!(insecure.check_internal_address(everywhere).is_ok());
    }

    #[test]
    fn security_flags_are_checked_at_start() {
        let args = Args::try_parse_from(["roomd", "--jwt-secret-file", "/nonexistent"]).unwrap();
        let error = args.load_security().unwrap_err().to_string();
        assert!(error.contains("--jwt-audience"), "{error}");

        assert!(Args::try_parse_from(["roomd", "--tls-cert", "cert.pem"]).is_err());
        assert!(Args::try_parse_from(["roomd", "--tls-client-ca", "ca.pem"]).is_err());

        let args =
            Args::try_parse_from(["roomd", "--node-token-file", "/nonexistent/token"]).unwrap();
        let error = args.load_security().unwrap_err().to_string();
        assert!(error.contains("/nonexistent/token"), "{error}");
    }

    #[test]
    fn timeouts_out_of_range_are_rejected() {
        assert!(Args::try_parse_from(["roomd", "--unused-timeout", "0"]).is_err());
        assert!(Args::try_parse_from(["roomd", "--empty-timeout", "86401"]).is_err());
        assert!(Args::try_parse_from(["roomd", "--max-participants", "1"]).is_err());
        assert!(Args::try_parse_from(["roomd", "--log-format", "xml"]).is_err());
    }
}
