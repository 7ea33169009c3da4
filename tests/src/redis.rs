//! [`RedisServer`]: a real `redis-server` process on a free loopback port,
//! with its data in a temporary folder, for tests of roomd's Redis store and
//! of clustering.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::free_loopback_address;
use crate::process::send_signal;

/// Connect and response timeout of the harness's own Redis clients.
const HARNESS_TIMEOUT: Duration = Duration::from_secs(10);

/// The program started, looked up on `PATH`.
const REDIS_SERVER: &str = "redis-server";
/// How many free ports [`RedisServer::spawn`] tries before it gives up.
const SPAWN_ATTEMPTS: usize = 5;
/// How long a started server may take until it replies PONG to PING,
/// which includes loading the append-only file.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`RedisServer::stop`] waits for the server to exit after
/// SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The log file's name inside the data folder.
const LOG_FILE: &str = "redis.log";

/// A `redis-server` process bound to `127.0.0.1` on a free port, with the
/// append-only file on (`appendfsync always`) and RDB snapshots off.
///
/// The server keeps its port and data folder across [`RedisServer::stop`],
/// [`RedisServer::kill`] and [`RedisServer::start`], so a restarted server
/// reloads every write it acknowledged. Dropping the value kills the server
/// with SIGKILL and deletes the data folder.
pub struct RedisServer {
    port: u16,
    /// The TLS port of a server from [`RedisServer::spawn_secured`].
    tls_port: Option<u16>,
    /// Flags after the harness's own, kept for restarts.
    extra_args: Vec<String>,
    /// The server's working folder: append-only files and log.
    dir: TempDir,
    /// The running process, or `None` while the server is stopped.
    child: Option<Child>,
}

/// Why one attempt to start `redis-server` failed.
enum StartError {
    /// Another process has the port.
    PortTaken(String),
    Failed(String),
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port in a new temporary
    /// folder and waits until it replies to PING.
    ///
    /// # Panics
    /// When `redis-server` is not on `PATH`, exits early, or does not reply
    /// to PING within 10 s.
    pub async fn spawn() -> Self {
        let mut server = Self::not_started();
        let mut failures = Vec::new();
        for _ in 0..SPAWN_ATTEMPTS {
            server.port = free_loopback_address().port();
            match server.try_start().await {
                Ok(()) => return server,
                Err(StartError::PortTaken(log)) => failures.push(log),
                Err(StartError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!(
            "redis-server found no free port in {SPAWN_ATTEMPTS} attempts; last log:\n{}",
            failures.last().map_or("", String::as_str)
        );
    }

    /// Starts `redis-server` like [`RedisServer::spawn`], with a password
    /// and, besides the plain port, a TLS port that serves `cert` (issued
    /// for `127.0.0.1`). Clients need no certificate of their own. Commands
    /// on either port need the password.
    ///
    /// # Panics
    /// As [`RedisServer::spawn`] does, and when this `redis-server` was
    /// built without TLS.
    pub async fn spawn_secured(cert: &crate::tls::CertFiles, password: &str) -> Self {
        let mut server = Self::not_started();
        for _ in 0..SPAWN_ATTEMPTS {
            server.port = free_loopback_address().port();
            let tls_port = free_loopback_address().port();
            server.tls_port = Some(tls_port);
            server.extra_args = vec![
                "--requirepass".into(),
                password.into(),
                "--tls-port".into(),
                tls_port.to_string(),
                "--tls-cert-file".into(),
                cert.cert.display().to_string(),
                "--tls-key-file".into(),
                cert.key.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
            ];
            match server.try_start().await {
                Ok(()) => return server,
                Err(StartError::PortTaken(_)) => continue,
                Err(StartError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!("redis-server found no free ports in {SPAWN_ATTEMPTS} attempts");
    }

    /// Returns a server that has not been started, with a new temporary
    /// folder.
    fn not_started() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("roomd-redis-")
            .tempdir()
            .expect("create a temporary folder for redis-server");
        RedisServer {
            port: 0,
            tls_port: None,
            extra_args: Vec::new(),
            dir,
            child: None,
        }
    }

    /// Returns the TLS port of a server from [`RedisServer::spawn_secured`].
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// Returns the `rediss://` URL of the TLS port, without the password.
    ///
    /// # Panics
    /// When the server was not started by [`RedisServer::spawn_secured`].
    pub fn tls_url(&self) -> String {
        let port = self.tls_port.expect("the server has a TLS port");
        format!("rediss://127.0.0.1:{port}")
    }

    /// Returns the URL that Redis clients and `roomd --redis-url` take,
    /// such as `redis://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.address())
    }

    /// Returns the port the server listens on. It stays the same across
    /// restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the server's socket address on `127.0.0.1`.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Returns the folder with the server's append-only files and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Returns the process id of the running server, or `None` while it is
    /// stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Tells whether a server process is running (not stopped, killed or
    /// exited on its own).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("poll redis-server").is_none(),
            None => false,
        }
    }

    /// Connects a new async client to the server. A connection does not
    /// survive a restart, so call this again after one.
    ///
    /// # Panics
    /// When the connection fails.
    pub async fn client(&self) -> ::redis::aio::MultiplexedConnection {
        let client = ::redis::Client::open(self.url())
            .unwrap_or_else(|e| panic!("invalid Redis URL {}: {e}", self.url()));
        // redis-rs gives up on a response after 500 ms by default, which a
        // busy 2-core CI machine can exceed. A test's own deadlines decide
        // when it fails, so the harness waits longer.
        let config = ::redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(HARNESS_TIMEOUT))
            .set_response_timeout(Some(HARNESS_TIMEOUT));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to redis-server at {}: {e}", self.url()))
    }

    /// Returns how many times the server ran each command since it started
    /// (or since `CONFIG RESETSTAT`), from `INFO commandstats`. Keys are
    /// Redis's lower-case command names, such as `set` or `client|setinfo`
    /// for a subcommand. The harness's own commands count too: `ping` from
    /// readiness checks, and one `info` for each earlier call of this
    /// method (an INFO command is counted only after it has run).
    ///
    /// # Panics
    /// When the command fails or the output cannot be parsed.
    pub async fn command_stats(&self) -> BTreeMap<String, u64> {
        let mut connection = self.client().await;
        let info: String = ::redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut connection)
            .await
            .unwrap_or_else(|e| panic!("INFO commandstats failed on {}: {e}", self.url()));
        parse_command_stats(&info)
    }

    /// Stops the server with SIGTERM, which makes Redis flush the
    /// append-only file and exit, and waits until it has exited. A server
    /// paused by [`RedisServer::sigstop`] is resumed so that it can handle
    /// the signal. Does nothing when the server is not running.
    ///
    /// # Panics
    /// When the server does not exit within 10 s.
    pub async fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Some(status) = child.try_wait().expect("poll redis-server") {
            return Some(status);
        }
        send_signal(child.id(), Signal::SIGTERM);
        send_signal(child.id(), Signal::SIGCONT);

        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("poll redis-server") {
                return Some(status);
            }
            if started.elapsed() > STOP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "redis-server did not exit within {STOP_TIMEOUT:?} of SIGTERM:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server with SIGKILL, so it gets no chance to write
    /// anything more, and waits until it has exited. Does nothing when the
    /// server is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Both fail only when the process has already exited and been
            // reaped.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and folder, so it reloads
    /// its append-only file, and waits until it replies to PING.
    ///
    /// # Panics
    /// When the server is already running, the port has been taken by
    /// another process, or the server does not reply to PING within 10 s.
    pub async fn start(&mut self) {
        assert!(
            !self.is_running(),
            "redis-server on port {} is already running",
            self.port
        );
        self.child = None;
        match self.try_start().await {
            Ok(()) => {}
            Err(StartError::PortTaken(log)) => panic!(
                "cannot restart redis-server: another process took port {} while it was down:\n{log}",
                self.port
            ),
            Err(StartError::Failed(message)) => panic!("{message}"),
        }
    }

    /// Stops the server with SIGTERM, then starts it again on the same port
    /// and folder and waits until it replies to PING.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    /// Pauses the server with SIGSTOP. Clients then hang instead of failing,
    /// as they do with an overloaded or partitioned server.
    ///
    /// # Panics
    /// When the server is not running.
    pub fn sigstop(&mut self) {
        send_signal(self.running_pid(), Signal::SIGSTOP);
    }

    /// Resumes a server paused by [`RedisServer::sigstop`].
    ///
    /// # Panics
    /// When the server is not running.
    pub fn sigcont(&mut self) {
        send_signal(self.running_pid(), Signal::SIGCONT);
    }

    /// Returns the server's log file so far, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    /// Returns the id of the running process, after checking that it has
    /// not exited (a reaped id may belong to another process by now).
    fn running_pid(&mut self) -> u32 {
        assert!(
            self.is_running(),
            "redis-server on port {} is not running",
            self.port
        );
        self.child
            .as_ref()
            .expect("a running server has a child")
            .id()
    }

    /// Starts `redis-server` on `self.port` and waits until it replies to PING.
    async fn try_start(&mut self) -> Result<(), StartError> {
        // The log file is shared by all runs, so only this run's lines tell
        // why it failed.
        let earlier_log_length = self.log().len();
        let child = Command::new(REDIS_SERVER)
            .args(["--bind", "127.0.0.1", "--protected-mode", "yes"])
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path())
            .args(["--daemonize", "no"])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", ""])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                StartError::Failed(if e.kind() == ErrorKind::NotFound {
                    format!(
                        "{REDIS_SERVER} is not on PATH; install it, for example with \
                         `apt-get install redis-server`"
                    )
                } else {
                    format!("cannot start {REDIS_SERVER}: {e}")
                })
            })?;
        self.child = Some(child);

        let started = Instant::now();
        loop {
            let child = self.child.as_mut().expect("the child was just started");
            if let Some(status) = child.try_wait().expect("poll redis-server") {
                self.child = None;
                let log = self.log();
                let log = log.get(earlier_log_length..).unwrap_or(&log).to_owned();
                return Err(if log.contains("Address already in use") {
                    StartError::PortTaken(log)
                } else {
                    StartError::Failed(format!(
                        "redis-server exited with {status} before it replied to PING:\n{log}"
                    ))
                });
            }
            if replies_pong(self.address()).await {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                self.kill();
                return Err(StartError::Failed(format!(
                    "redis-server on {} did not reply to PING within {READY_TIMEOUT:?}:\n{}",
                    self.address(),
                    self.log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .field("pid", &self.pid())
            .finish()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Tells whether a Redis server on `address` replies PONG to PING, or
/// `-NOAUTH` when it has a password. A server still loading its
/// append-only file replies `-LOADING` instead.
async fn replies_pong(address: SocketAddr) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await?;
        std::io::Result::Ok(line)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), exchange).await,
        Ok(Ok(line)) if line.trim_end() == "+PONG" || line.starts_with("-NOAUTH")
    )
}

/// Parses the output of `INFO commandstats` into command name → calls.
/// Lines look like
/// `cmdstat_set:calls=3,usec=12,usec_per_call=4.00,rejected_calls=0,failed_calls=0`.
///
/// # Panics
/// When a `cmdstat_` line has no `calls` field.
pub fn parse_command_stats(info: &str) -> BTreeMap<String, u64> {
    let mut stats = BTreeMap::new();
    for line in info.lines() {
        let Some((name, fields)) = line
            .strip_prefix("cmdstat_")
            .and_then(|rest| rest.split_once(':'))
        else {
            continue;
        };
        let calls = fields
            .split(',')
            .find_map(|field| field.strip_prefix("calls="))
            .and_then(|calls| calls.parse().ok())
            .unwrap_or_else(|| panic!("no calls count in INFO commandstats line {line:?}"));
        stats.insert(name.to_owned(), calls);
    }
    stats
}
