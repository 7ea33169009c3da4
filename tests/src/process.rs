//! The workspace binaries, built once per test process, and [`RoomdProcess`],
//! a real `roomd` process on free loopback ports, with helpers to send it
//! signals.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use roomd_proto::v1::rooms_client::RoomsClient;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::{ROOMS_SERVICE, connect};

/// A binary of the workspace and the package that builds it.
struct WorkspaceBinary {
    name: &'static str,
    package: &'static str,
    /// Outcome of building this package alone, tried only when building all
    /// binaries together failed.
    built_alone: OnceLock<Result<(), String>>,
}

static WORKSPACE_BINARIES: [WorkspaceBinary; 2] = [
    WorkspaceBinary {
        name: "roomd",
        package: "roomd-server",
        built_alone: OnceLock::new(),
    },
    WorkspaceBinary {
        name: "roomctl",
        package: "roomctl",
        built_alone: OnceLock::new(),
    },
];

/// Folders under `crates/` whose sources go into `roomd` or `roomctl`.
const BINARY_SOURCE_CRATES: [&str; 6] = ["model", "proto", "store", "actors", "server", "cli"];

static ALL_BINARIES_BUILT: OnceLock<Result<(), String>> = OnceLock::new();

/// Returns the path of the workspace binary `name` (`roomd` or `roomctl`),
/// built with the profile of the running test.
///
/// The first call in a test process runs `cargo build --bins` for both
/// binaries, unless both are newer than every source file of the workspace,
/// as they are right after `cargo test --workspace` built them. That build
/// can take a while after a change. Later calls only look the binary up.
/// If one of them does not compile, the other one is built alone, so its
/// tests still run.
///
/// # Panics
/// When `name` is not a workspace binary, or the build fails.
pub fn binary(name: &str) -> PathBuf {
    let binary = WORKSPACE_BINARIES
        .iter()
        .find(|binary| binary.name == name)
        .unwrap_or_else(|| panic!("{name:?} is not a workspace binary; expected roomd or roomctl"));

    let packages: Vec<&str> = WORKSPACE_BINARIES.iter().map(|b| b.package).collect();
    let built_together = ALL_BINARIES_BUILT.get_or_init(|| {
        if binaries_newer_than_sources() {
            Ok(())
        } else {
            cargo_build(&packages)
        }
    });
    if let Err(together_error) = built_together
        && let Err(alone_error) = binary
            .built_alone
            .get_or_init(|| cargo_build(&[binary.package]))
    {
        panic!(
            "cannot build {name}.\nBuilding all binaries failed:\n{together_error}\n\
             Building {} alone failed:\n{alone_error}",
            binary.package
        );
    }

    let path = profile_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "cargo built {name}, but it is not at {}; tests run with --target or \
         --target-dir cannot find it (set CARGO_TARGET_DIR instead of --target-dir)",
        path.display()
    );
    path
}

/// Tells whether both binaries exist and were built after the last change to
/// any manifest, proto file or source file of the workspace. Building them
/// again would then change nothing, yet `cargo build` without the tests'
/// dev-dependency features would recompile part of the dependency tree.
fn binaries_newer_than_sources() -> bool {
    let oldest_binary = WORKSPACE_BINARIES
        .iter()
        .map(|binary| {
            let path =
                profile_dir().join(format!("{}{}", binary.name, std::env::consts::EXE_SUFFIX));
            std::fs::metadata(path)
                .and_then(|metadata| metadata.modified())
                .ok()
        })
        .collect::<Option<Vec<_>>>()
        .and_then(|times| times.into_iter().min());
    let Some(oldest_binary) = oldest_binary else {
        return false;
    };

    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let mut sources: Vec<PathBuf> = ["Cargo.toml", "Cargo.lock", "proto"]
        .iter()
        .map(|name| root.join(name))
        .collect();
    for package in BINARY_SOURCE_CRATES {
        let folder = root.join("crates").join(package);
        sources.extend(["Cargo.toml", "src", "build.rs"].map(|name| folder.join(name)));
    }
    sources
        .iter()
        .filter(|source| source.exists())
        .all(|source| newest_change(source).is_some_and(|newest| newest <= oldest_binary))
}

/// Returns the latest modification time of `path` and, for a folder, of
/// everything below it.
fn newest_change(path: &Path) -> Option<std::time::SystemTime> {
    let metadata = std::fs::metadata(path).ok()?;
    let mut newest = metadata.modified().ok()?;
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path).ok()? {
            let changed = newest_change(&entry.ok()?.path())?;
            newest = newest.max(changed);
        }
    }
    Some(newest)
}

/// Returns the target directory of the running test's profile, such as
/// `target/debug`, which is the parent of the `deps` folder that contains
/// the test.
fn profile_dir() -> PathBuf {
    let executable = std::env::current_exe().expect("locate the running executable");
    let folder = executable
        .parent()
        .expect("an executable lives in a folder");
    // Test executables live in the profile's `deps` folder; binaries such
    // as roomd-chaos, which uses this harness too, in the profile folder.
    if folder.file_name().and_then(|name| name.to_str()) == Some("deps") {
        folder
            .parent()
            .expect("a deps folder lives in a profile folder")
            .to_path_buf()
    } else {
        folder.to_path_buf()
    }
}

/// Returns the cargo flag that selects the profile whose output lives in
/// `profile_dir`.
fn profile_args(profile_dir: &Path) -> Vec<String> {
    match profile_dir.file_name().and_then(|name| name.to_str()) {
        // `cargo test` builds with the `test` profile, which writes to
        // `debug` and inherits from `dev`.
        Some("debug") | None => Vec::new(),
        Some("release") => vec!["--release".to_owned()],
        Some(custom) => vec!["--profile".to_owned(), custom.to_owned()],
    }
}

/// Runs `cargo build --bins` for `packages`; returns cargo's output on
/// failure.
fn cargo_build(packages: &[&str]) -> Result<(), String> {
    let mut command = Command::new(env!("CARGO"));
    command.arg("build").arg("--bins");
    for package in packages {
        command.args(["-p", package]);
    }
    command.args(profile_args(&profile_dir()));
    // Run from the workspace root, whatever the test's directory.
    command.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));

    tracing::info!(
        ?packages,
        "building the roomd binaries with cargo, which can take minutes after a change"
    );
    let output = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", env!("CARGO")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} exited with {}:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// How many free ports [`RoomdProcess::spawn`] tries before it gives up.
const SPAWN_ATTEMPTS: usize = 5;
/// How long a started `roomd` may take until its health check reports
/// serving.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Environment variables that would point a started `roomd` at a Redis
/// server or cluster of the developer's shell. The harness removes them, so
/// only its flags decide where a process connects.
const CLUSTER_ENVIRONMENT: [&str; 4] = [
    "ROOMD_REDIS_URL",
    "ROOMD_NODE_TTL",
    "ROOMD_INTERNAL_LISTEN",
    "ROOMD_ADVERTISE_ADDR",
];

/// A `roomd` process serving on `127.0.0.1` and a free port. Dropping it
/// kills the process.
pub struct RoomdProcess {
    /// The public gRPC address (`--listen`).
    pub address: SocketAddr,
    /// The internal node-to-node gRPC address: `--internal-listen` and
    /// `--advertise-addr` for [`RoomdProcess::spawn_clustered`], and
    /// `ROOMD_INTERNAL_LISTEN` for [`RoomdProcess::spawn`]. A roomd without
    /// clustering may never bind it.
    pub internal_address: SocketAddr,
    /// Client TLS settings when the process serves TLS.
    tls: Option<ClientTlsConfig>,
    child: Child,
    /// Everything the process wrote to stderr (its log) so far.
    log: Arc<Mutex<Vec<u8>>>,
}

/// How a started `roomd` learns its internal listen address.
#[derive(Clone, Copy)]
enum InternalAddressSource {
    /// The `ROOMD_INTERNAL_LISTEN` variable, which a roomd without the
    /// `--internal-listen` flag ignores.
    Environment,
    /// The `--internal-listen` and `--advertise-addr` flags.
    Flags,
}

/// Why one attempt to start `roomd` failed.
enum SpawnError {
    /// The port was taken between choosing and binding it; try another.
    PortTaken(String),
    Failed(String),
}

impl RoomdProcess {
    /// Starts the `roomd` binary with `--listen 127.0.0.1:<free port>` and
    /// `extra_args`, and waits until its health check reports the rooms
    /// service serving. It also sets `ROOMD_INTERNAL_LISTEN` to a free
    /// port, so that processes started in parallel never compete for the
    /// default internal port.
    ///
    /// # Panics
    /// When `roomd` cannot be built, exits early, or is not ready within
    /// 20 s.
    pub async fn spawn(extra_args: &[&str]) -> Self {
        let extra_args: Vec<String> = extra_args.iter().map(|&arg| arg.to_owned()).collect();
        Self::spawn_with(&extra_args, InternalAddressSource::Environment, None).await
    }

    /// Like [`RoomdProcess::spawn`] for a `roomd` that serves TLS, with its
    /// `--tls-*` flags in `extra_args`. The health check and
    /// [`RoomdProcess::rooms_client`] connect with `tls`.
    pub async fn spawn_tls(extra_args: &[String], tls: ClientTlsConfig) -> Self {
        Self::spawn_with(extra_args, InternalAddressSource::Environment, Some(tls)).await
    }

    /// Starts the `roomd` binary with `--listen`, `--internal-listen` and
    /// `--advertise-addr` (the same as the internal address) on free
    /// loopback ports, followed by `extra_args`, and waits until its health
    /// check reports the rooms service serving. Cluster tests pass
    /// `--redis-url` and `--node-ttl` in `extra_args`.
    ///
    /// # Panics
    /// When `roomd` cannot be built, exits early (for example because it
    /// rejects one of the flags), or is not ready within 20 s.
    pub async fn spawn_clustered(extra_args: &[String]) -> Self {
        Self::spawn_with(extra_args, InternalAddressSource::Flags, None).await
    }

    async fn spawn_with(
        extra_args: &[String],
        internal_source: InternalAddressSource,
        tls: Option<ClientTlsConfig>,
    ) -> Self {
        // The first call builds the binaries, which must not block the
        // runtime's threads.
        let program = tokio::task::spawn_blocking(|| binary("roomd"))
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        let mut failures = Vec::new();
        for _ in 0..SPAWN_ATTEMPTS {
            let address = free_loopback_address();
            let internal_address = loop {
                let candidate = free_loopback_address();
                if candidate != address {
                    break candidate;
                }
            };
            let spawned = Self::try_spawn(
                &program,
                (address, internal_address),
                internal_source,
                extra_args,
                tls.clone(),
            );
            match spawned.await {
                Ok(process) => return process,
                Err(SpawnError::PortTaken(log)) => failures.push(log),
                Err(SpawnError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!(
            "roomd found no free port in {SPAWN_ATTEMPTS} attempts; last log:\n{}",
            failures.last().map_or("", String::as_str)
        );
    }

    async fn try_spawn(
        program: &Path,
        (address, internal_address): (SocketAddr, SocketAddr),
        internal_source: InternalAddressSource,
        extra_args: &[String],
        tls: Option<ClientTlsConfig>,
    ) -> Result<Self, SpawnError> {
        let mut command = Command::new(program);
        command.arg("--listen").arg(address.to_string());
        for name in CLUSTER_ENVIRONMENT {
            command.env_remove(name);
        }
        match internal_source {
            InternalAddressSource::Environment => {
                command.env("ROOMD_INTERNAL_LISTEN", internal_address.to_string());
            }
            InternalAddressSource::Flags => {
                command
                    .arg("--internal-listen")
                    .arg(internal_address.to_string())
                    .arg("--advertise-addr")
                    .arg(internal_address.to_string());
            }
        }
        let mut child = command
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SpawnError::Failed(format!("cannot start {}: {e}", program.display())))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        drain_in_background(child.stderr.take().expect("stderr is piped"), log.clone());

        let mut process = RoomdProcess {
            address,
            internal_address,
            tls,
            child,
            log,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = process.child.try_wait().expect("poll the roomd process") {
                // The reader thread may still be copying the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let log = process.log();
                // roomd reports a taken public port with "cannot listen", but
                // a taken internal port may only show the OS error.
                return Err(
                    if log.contains("cannot listen") || log.contains("Address already in use") {
                        SpawnError::PortTaken(log)
                    } else {
                        SpawnError::Failed(format!(
                            "roomd exited with {status} before it served:\n{log}"
                        ))
                    },
                );
            }
            if process.is_serving().await {
                return Ok(process);
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(SpawnError::Failed(format!(
                    "roomd on {address} did not report serving within {READY_TIMEOUT:?}:\n{}",
                    process.log()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Tells whether the process's health check reports the rooms service
    /// serving within 2 s. A paused (SIGSTOP) process accepts the
    /// connection but never replies, so it counts as not serving.
    pub async fn is_serving(&self) -> bool {
        let Some(endpoint) = self.endpoint() else {
            return false;
        };
        let Ok(channel) = endpoint
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(2))
            .connect()
            .await
        else {
            return false;
        };
        let request = HealthCheckRequest {
            service: ROOMS_SERVICE.to_owned(),
        };
        match HealthClient::new(channel).check(request).await {
            Ok(response) => response.into_inner().status == ServingStatus::Serving as i32,
            Err(_) => false,
        }
    }

    /// Returns the URL clients connect to, such as `http://127.0.0.1:40123`,
    /// or `https://...` when the process serves TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    /// Connects a `Rooms` client to the process.
    pub async fn rooms_client(&self) -> RoomsClient<Channel> {
        match &self.tls {
            None => RoomsClient::new(connect(self.address).await),
            Some(tls) => RoomsClient::new(self.channel(tls.clone()).await),
        }
    }

    /// Connects to the public address over TLS with `tls`, which may carry
    /// a client certificate.
    ///
    /// # Panics
    /// When the connection fails.
    pub async fn channel(&self, tls: ClientTlsConfig) -> Channel {
        let url = format!("https://{}", self.address);
        Endpoint::from_shared(url.clone())
            .and_then(|endpoint| endpoint.tls_config(tls))
            .unwrap_or_else(|e| panic!("invalid endpoint {url}: {e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("cannot connect to roomd at {url}: {e}"))
    }

    fn endpoint(&self) -> Option<Endpoint> {
        let endpoint = Endpoint::from_shared(self.url()).ok()?;
        match &self.tls {
            Some(tls) => endpoint.tls_config(tls.clone()).ok(),
            None => Some(endpoint),
        }
    }

    /// Returns what the process has logged so far.
    pub fn log(&self) -> String {
        let log = self
            .log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&log).into_owned()
    }

    /// Sends SIGTERM, which starts roomd's graceful shutdown (a clustered
    /// node first hands its rooms to other nodes), and waits up to `timeout`
    /// for the process to exit.
    ///
    /// # Panics
    /// When the process has already exited or outlives `timeout`.
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.sigterm();
        self.wait_exit(timeout).await
    }

    /// Returns the process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns the exit status if the process has exited, without waiting.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll the roomd process")
    }

    /// Sends SIGTERM without waiting for the exit, which
    /// [`RoomdProcess::wait_exit`] does.
    ///
    /// # Panics
    /// When the process has already exited.
    pub fn sigterm(&mut self) {
        self.signal(Signal::SIGTERM);
    }

    /// Pauses the process with SIGSTOP: it keeps its sockets but neither
    /// serves requests nor sends heartbeats until [`RoomdProcess::sigcont`].
    ///
    /// # Panics
    /// When the process has already exited.
    pub fn sigstop(&mut self) {
        self.signal(Signal::SIGSTOP);
    }

    /// Resumes a process paused by [`RoomdProcess::sigstop`].
    ///
    /// # Panics
    /// When the process has already exited.
    pub fn sigcont(&mut self) {
        self.signal(Signal::SIGCONT);
    }

    /// Kills the process with SIGKILL, as a crash would, and returns its
    /// exit status once it is gone.
    ///
    /// # Panics
    /// When the process has already exited.
    pub async fn sigkill(&mut self) -> ExitStatus {
        self.signal(Signal::SIGKILL);
        self.wait_exit(Duration::from_secs(10)).await
    }

    /// Waits up to `timeout` for the process to exit and returns its status.
    ///
    /// # Panics
    /// When the process outlives `timeout`. The message contains its log.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                return status;
            }
            assert!(
                started.elapsed() < timeout,
                "roomd (pid {}) did not exit within {timeout:?}:\n{}",
                self.pid(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` to the process after checking that it has not been
    /// reaped, because the id of a reaped process may belong to another
    /// process by now.
    fn signal(&mut self, signal: Signal) {
        if let Some(status) = self.exit_status() {
            panic!(
                "cannot send {signal} to roomd (pid {}): it already exited with {status}:\n{}",
                self.pid(),
                self.log()
            );
        }
        send_signal(self.pid(), signal);
    }
}

impl std::fmt::Debug for RoomdProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomdProcess")
            .field("address", &self.address)
            .field("internal_address", &self.internal_address)
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl Drop for RoomdProcess {
    fn drop(&mut self) {
        // Both fail only when the process has already exited and been
        // reaped, which is the state we want.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `roomd` binary with `args` until it exits, off the async
/// runtime's threads, for tests of start-up failures. The Redis and cluster
/// variables of the developer's shell are removed first.
///
/// # Panics
/// When `roomd` cannot be built or started.
pub async fn run_roomd(args: Vec<String>) -> std::process::Output {
    let program = tokio::task::spawn_blocking(|| binary("roomd"))
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(program);
        for name in CLUSTER_ENVIRONMENT {
            command.env_remove(name);
        }
        command.args(&args).output().expect("roomd runs")
    })
    .await
    .expect("the roomd task completes")
}

/// Copies `stderr` into `log` on a thread until the process closes it, so
/// a chatty process never blocks on a full pipe.
fn drain_in_background(mut stderr: impl Read + Send + 'static, log: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        loop {
            match stderr.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(read) => log
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .extend_from_slice(&buffer[..read]),
            }
        }
    });
}

/// Returns a loopback address whose port was free a moment ago. Another
/// process may take it before it is bound again, so callers retry.
pub fn free_loopback_address() -> SocketAddr {
    let listener =
        StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port on 127.0.0.1");
    listener.local_addr().expect("read the bound address")
}

/// Sends `signal` to the process `pid`.
///
/// # Panics
/// When the signal cannot be sent, for example because no process has that
/// id.
pub(crate) fn send_signal(pid: u32, signal: Signal) {
    let raw_pid = i32::try_from(pid).expect("a process id fits in an i32");
    nix::sys::signal::kill(Pid::from_raw(raw_pid), signal)
        .unwrap_or_else(|e| panic!("cannot send {signal} to process {pid}: {e}"));
}
