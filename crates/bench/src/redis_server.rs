//! A redis-server that a cluster benchmark starts for itself on 127.0.0.1,
//! direct reads of roomd's keys in it, and `redis-benchmark` as the
//! reference.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use roomd_store::NodeInfo;
use serde::Serialize;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::cli::RedisArgs;

/// How long redis-server may take after its start to reply to PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Key prefix of roomd's Redis store (`RedisConfig::key_prefix` default).
const KEY_PREFIX: &str = "roomd";

/// A running redis-server child process with its data directory. Dropping
/// it kills the process with SIGKILL.
pub struct RedisServer {
    pub url: String,
    pub port: u16,
    /// Process id of redis-server.
    pub pid: u32,
    pub setup: RedisSetup,
    connection: MultiplexedConnection,
    _process: Child,
}

/// The Redis version and persistence settings, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct RedisSetup {
    pub version: String,
    pub appendonly: String,
    pub appendfsync: String,
    /// RDB snapshots are off (`save ""`), so the AOF is the only persistence.
    pub save: String,
}

impl RedisServer {
    /// Starts redis-server on a free port of 127.0.0.1 with AOF on, writing
    /// its files and log to `dir`, and waits until it replies to PING.
    pub async fn start(args: &RedisArgs, dir: &Path) -> Result<Self, String> {
        let port = free_port()?;
        let log_file = dir.join("redis.log");
        let mut command = Command::new(&args.redis_server);
        command
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log_file)
            .arg("--appendonly")
            .arg("yes")
            .arg("--appendfsync")
            .arg(args.appendfsync.as_str())
            .arg("--save")
            .arg("")
            .arg("--daemonize")
            .arg("no")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut process = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", args.redis_server))?;

        let pid = process
            .id()
            .ok_or_else(|| format!("{} exited right after its start", args.redis_server))?;
        let url = format!("redis://127.0.0.1:{port}");
        let client = redis::Client::open(url.as_str())
            .map_err(|e| format!("invalid Redis URL {url}: {e}"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        let mut connection = loop {
            if let Ok(Some(status)) = process.try_wait() {
                return Err(format!(
                    "{} exited with {status} before it answered; see {}",
                    args.redis_server,
                    log_file.display()
                ));
            }
            match client.get_multiplexed_async_connection().await {
                Ok(connection) => break connection,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "redis-server on port {port} did not answer within {} s: {e}",
                        START_TIMEOUT.as_secs()
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(|e| format!("PING to Redis on port {port} failed: {e}"))?;

        let setup = read_setup(&mut connection).await?;
        if setup.appendonly != "yes" || setup.appendfsync != args.appendfsync.as_str() {
            return Err(format!(
                "Redis runs with appendonly {} and appendfsync {}, not yes and {}",
                setup.appendonly,
                setup.appendfsync,
                args.appendfsync.as_str()
            ));
        }
        Ok(RedisServer {
            url,
            port,
            pid,
            setup,
            connection,
            _process: process,
        })
    }

    /// Returns a handle on the shared connection for direct reads.
    pub fn connection(&self) -> MultiplexedConnection {
        self.connection.clone()
    }

    /// Returns the ids of the rooms that roomd's store lists as owned by
    /// `node` (`SMEMBERS roomd:node:<id>:rooms`).
    pub async fn rooms_of(&self, node: &str) -> Result<Vec<String>, String> {
        let key = format!("{KEY_PREFIX}:node:{node}:rooms");
        self.connection()
            .smembers(&key)
            .await
            .map_err(|e| format!("SMEMBERS {key} failed: {e}"))
    }

    /// Counts the rooms that roomd's store lists as owned by `node`
    /// (`SCARD roomd:node:<id>:rooms`).
    pub async fn room_count_of(&self, node: &str) -> Result<u64, String> {
        let key = format!("{KEY_PREFIX}:node:{node}:rooms");
        self.connection()
            .scard(&key)
            .await
            .map_err(|e| format!("SCARD {key} failed: {e}"))
    }

    /// Returns the calls per command since Redis started, from `INFO
    /// commandstats`, keyed by lowercase command name.
    pub async fn command_calls(&self) -> Result<HashMap<String, u64>, String> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.connection())
            .await
            .map_err(|e| format!("INFO commandstats failed: {e}"))?;
        Ok(parse_command_calls(&info))
    }

    /// Reads the registered nodes (`HGETALL roomd:nodes`), keyed by the
    /// address of their internal API.
    pub async fn nodes_by_address(&self) -> Result<HashMap<String, NodeInfo>, String> {
        let key = format!("{KEY_PREFIX}:nodes");
        let entries: HashMap<String, String> = self
            .connection()
            .hgetall(&key)
            .await
            .map_err(|e| format!("HGETALL {key} failed: {e}"))?;
        let mut nodes = HashMap::new();
        for (id, json) in entries {
            let info: NodeInfo = serde_json::from_str(&json)
                .map_err(|e| format!("node {id} in {key} is not valid NodeInfo JSON: {e}"))?;
            nodes.insert(info.address.clone(), info);
        }
        Ok(nodes)
    }
}

async fn read_setup(connection: &mut MultiplexedConnection) -> Result<RedisSetup, String> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(connection)
        .await
        .map_err(|e| format!("INFO server failed: {e}"))?;
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    Ok(RedisSetup {
        version,
        appendonly: config_get(connection, "appendonly").await?,
        appendfsync: config_get(connection, "appendfsync").await?,
        save: config_get(connection, "save").await?,
    })
}

async fn config_get(connection: &mut MultiplexedConnection, name: &str) -> Result<String, String> {
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(connection)
        .await
        .map_err(|e| format!("CONFIG GET {name} failed: {e}"))?;
    pair.into_iter()
        .nth(1)
        .ok_or_else(|| format!("CONFIG GET {name} returned no value"))
}

/// Parses `cmdstat_<name>:calls=<n>,...` lines of `INFO commandstats`.
fn parse_command_calls(info: &str) -> HashMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Returns the CPU time that every thread of process `pid` has run so far,
/// in seconds, summed from `/proc/<pid>/task/*/schedstat` (its first field
/// is the time on the CPU in nanoseconds). Threads that already exited are
/// not counted.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let tasks = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&tasks).map_err(|e| format!("cannot read {tasks}: {e}"))?;
    let mut nanoseconds: u64 = 0;
    for entry in entries.flatten() {
        let path = entry.path().join("schedstat");
        // A thread may exit between the listing and the read.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        nanoseconds += text
            .split_whitespace()
            .next()
            .and_then(|field| field.parse::<u64>().ok())
            .ok_or_else(|| format!("{} has no CPU time", path.display()))?;
    }
    Ok(nanoseconds as f64 / 1e9)
}

/// Returns a port of 127.0.0.1 that was free a moment ago. Another process
/// may take it before the caller binds it, and the caller then fails to
/// start.
pub fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| format!("cannot read a free port: {e}"))
}

/// Figures of one `redis-benchmark` run, from its `--csv` output.
#[derive(Debug, Clone, Serialize)]
pub struct RedisBenchmark {
    pub command: String,
    pub test: String,
    pub clients: u32,
    pub requests: u64,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Runs `redis-benchmark -t set` against the Redis on `port` of 127.0.0.1
/// with `clients` connections and `requests` requests.
pub async fn run_redis_benchmark(
    program: &str,
    port: u16,
    clients: u32,
    requests: u64,
) -> Result<RedisBenchmark, String> {
    let args = [
        "-h".to_owned(),
        "127.0.0.1".to_owned(),
        "-p".to_owned(),
        port.to_string(),
        "-t".to_owned(),
        "set".to_owned(),
        "-c".to_owned(),
        clients.to_string(),
        "-n".to_owned(),
        requests.to_string(),
        "--csv".to_owned(),
    ];
    let command_line = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {command_line}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{command_line} exited with {}: {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let row =
        parse_csv(&stdout).map_err(|e| format!("cannot read the output of {command_line}: {e}"))?;
    let number = |column: &str| -> Result<f64, String> {
        row.get(column)
            .ok_or_else(|| format!("the output of {command_line} has no {column} column"))?
            .parse()
            .map_err(|_| format!("the {column} column of {command_line} is not a number"))
    };
    Ok(RedisBenchmark {
        test: row.get("test").cloned().unwrap_or_default(),
        requests_per_second: number("rps")?,
        p50_ms: number("p50_latency_ms")?,
        p99_ms: number("p99_latency_ms")?,
        max_ms: number("max_latency_ms")?,
        command: command_line,
        clients,
        requests,
    })
}

/// Parses redis-benchmark's `--csv` output (a header line and one quoted
/// line per test) and returns the first test's columns by name.
fn parse_csv(text: &str) -> Result<HashMap<String, String>, String> {
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let header = lines.next().ok_or("the output is empty")?;
    let row = lines
        .next()
        .ok_or("the output has a header but no result")?;
    let fields = |line: &str| -> Vec<String> {
        line.split(',')
            .map(|field| field.trim().trim_matches('"').to_owned())
            .collect()
    };
    let names = fields(header);
    let values = fields(row);
    if names.len() != values.len() {
        return Err(format!(
            "the header has {} columns but the result has {}",
            names.len(),
            values.len()
        ));
    }
    Ok(names.into_iter().zip(values).collect())
}

/// Directory for the logs and data of a run: the given one, created if
/// needed and kept, or a temporary one removed at the end.
pub enum RunDir {
    Kept(PathBuf),
    Temporary(tempfile::TempDir),
}

impl RunDir {
    pub fn new(kept: Option<&Path>) -> Result<Self, String> {
        match kept {
            Some(path) => {
                std::fs::create_dir_all(path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                Ok(RunDir::Kept(path.to_owned()))
            }
            None => tempfile::Builder::new()
                .prefix("roomd-bench-")
                .tempdir()
                .map(RunDir::Temporary)
                .map_err(|e| format!("cannot create a temporary directory: {e}")),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            RunDir::Kept(path) => path,
            RunDir::Temporary(dir) => dir.path(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_output_parses() {
        let text = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\"SET\",\"81833.06\",\"0.314\",\"0.072\",\"0.295\",\"0.527\",\"0.791\",\"2.375\"\n";
        let row = parse_csv(text).unwrap();
        assert_eq!(row["test"], "SET");
        assert_eq!(row["rps"], "81833.06");
        assert_eq!(row["p99_latency_ms"], "0.791");
    }

    #[test]
    fn command_stats_parse() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=12,usec=340,usec_per_call=28.33,rejected_calls=0,failed_calls=0\r\ncmdstat_get:calls=3,usec=2\r\n";
        let calls = parse_command_calls(info);
        assert_eq!(calls["evalsha"], 12);
        assert_eq!(calls["get"], 3);
        assert_eq!(calls.len(), 2);
    }

    #[test]
    fn csv_output_rejects_missing_row() {
        assert!(parse_csv("").is_err());
        assert!(parse_csv("\"test\",\"rps\"\n").is_err());
        assert!(parse_csv("\"test\",\"rps\"\n\"SET\"\n").is_err());
    }
}
