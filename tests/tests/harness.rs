//! Tests of the harness itself: [`RedisServer`] runs a real `redis-server`
//! that keeps its data across restarts and kills, [`RoomdProcess`] and
//! [`Cluster`] deliver signals, and dropping any of them leaves no process
//! behind.
//!
//! The cluster tests need a `roomd` that accepts `--redis-url`,
//! `--node-ttl`, `--internal-listen` and `--advertise-addr`.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use nix::errno::Errno;
use nix::unistd::Pid;
use roomd_tests::redis::parse_command_stats;
use roomd_tests::{Cluster, RedisServer, RoomdProcess, eventually};

/// How long a test waits for a signal to change a process's state.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(5);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Returns the state letter of process `pid` from `/proc/PID/stat`, such
/// as `R` (running), `S` (sleeping) or `T` (stopped by a signal).
fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/stat: {e}"));
    // The command name in brackets may contain spaces and brackets, so the
    // state is the first field after the last ')'.
    let (_, after_name) = stat
        .rsplit_once(')')
        .unwrap_or_else(|| panic!("no command name in /proc/{pid}/stat: {stat:?}"));
    after_name
        .trim_start()
        .chars()
        .next()
        .unwrap_or_else(|| panic!("no state in /proc/{pid}/stat: {stat:?}"))
}

/// Waits until process `pid` is in state `T` (`stopped` true) or out of it.
async fn wait_for_stopped_state(pid: u32, stopped: bool) {
    eventually(SIGNAL_TIMEOUT, POLL_INTERVAL, async || {
        let state = process_state(pid);
        if (state == 'T') == stopped {
            Ok(())
        } else {
            Err(format!("process {pid} is in state {state:?}"))
        }
    })
    .await;
}

/// Asserts that no process has id `pid`: signal 0 fails with ESRCH. A
/// zombie that was never reaped would still accept the signal.
fn assert_process_gone(pid: u32, description: &str) {
    let result = nix::sys::signal::kill(Pid::from_raw(pid as i32), None);
    assert_eq!(
        result,
        Err(Errno::ESRCH),
        "{description} (pid {pid}) still exists after drop"
    );
}

async fn get(redis: &RedisServer, key: &str) -> Option<String> {
    let mut connection = redis.client().await;
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("GET {key} failed: {e}"))
}

async fn set(redis: &RedisServer, key: &str, value: &str) {
    let mut connection = redis.client().await;
    let () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("SET {key} failed: {e}"));
}

async fn config_get(redis: &RedisServer, parameter: &str) -> String {
    let mut connection = redis.client().await;
    let mut values: BTreeMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(parameter)
        .query_async(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("CONFIG GET {parameter} failed: {e}"));
    values
        .remove(parameter)
        .unwrap_or_else(|| panic!("CONFIG GET {parameter} returned no value"))
}

#[tokio::test]
async fn redis_server_serves_on_loopback() {
    let redis = RedisServer::spawn().await;
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    assert!(redis.address().ip().is_loopback());

    let mut connection = redis.client().await;
    let pong: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");

    assert_eq!(config_get(&redis, "bind").await, "127.0.0.1");
    assert_eq!(config_get(&redis, "appendonly").await, "yes");
    assert_eq!(config_get(&redis, "appendfsync").await, "always");
    assert_eq!(config_get(&redis, "save").await, "");
    assert_eq!(
        std::path::Path::new(&config_get(&redis, "dir").await),
        redis.dir().canonicalize().unwrap()
    );
}

#[tokio::test]
async fn redis_key_survives_restart() {
    let mut redis = RedisServer::spawn().await;
    let port = redis.port();
    let pid = redis.pid().expect("a spawned server runs");
    set(&redis, "harness:restart", "kept").await;

    redis.restart().await;

    assert_eq!(redis.port(), port);
    assert_ne!(
        redis.pid(),
        Some(pid),
        "restart did not start a new process"
    );
    assert_process_gone(pid, "the redis-server stopped by restart");
    assert_eq!(
        get(&redis, "harness:restart").await.as_deref(),
        Some("kept"),
        "redis log:\n{}",
        redis.log()
    );
}

#[tokio::test]
async fn redis_key_survives_kill() {
    let mut redis = RedisServer::spawn().await;
    set(&redis, "harness:kill", "kept").await;

    redis.kill();
    assert!(!redis.is_running());
    assert_eq!(redis.pid(), None);
    let connection = tokio::net::TcpStream::connect(redis.address()).await;
    assert!(
        connection.is_err(),
        "a killed server still accepts connections"
    );

    redis.start().await;
    assert!(redis.is_running());
    assert_eq!(
        get(&redis, "harness:kill").await.as_deref(),
        Some("kept"),
        "redis log:\n{}",
        redis.log()
    );
}

#[tokio::test]
async fn redis_stays_down_until_start() {
    let mut redis = RedisServer::spawn().await;
    set(&redis, "harness:stop", "kept").await;

    let status = redis.stop().await.expect("the server was running");
    assert!(status.success(), "redis-server exited with {status}");
    assert!(!redis.is_running());
    assert_eq!(redis.stop().await, None, "a second stop found a process");

    // Nothing restarts it behind the test's back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let connection = tokio::net::TcpStream::connect(redis.address()).await;
    assert!(
        connection.is_err(),
        "a stopped server still accepts connections"
    );

    redis.start().await;
    assert_eq!(get(&redis, "harness:stop").await.as_deref(), Some("kept"));
}

#[tokio::test]
async fn redis_sigstop_pauses_server() {
    let mut redis = RedisServer::spawn().await;
    let pid = redis.pid().unwrap();

    redis.sigstop();
    wait_for_stopped_state(pid, true).await;

    redis.sigcont();
    wait_for_stopped_state(pid, false).await;
    set(&redis, "harness:resumed", "yes").await;
    assert_eq!(get(&redis, "harness:resumed").await.as_deref(), Some("yes"));
}

#[tokio::test]
async fn command_stats_counts_calls() {
    let redis = RedisServer::spawn().await;
    let before = redis.command_stats().await;

    let mut connection = redis.client().await;
    for _ in 0..25 {
        let _: i64 = redis::cmd("INCR")
            .arg("harness:counter")
            .query_async(&mut connection)
            .await
            .expect("INCR");
    }

    let after = redis.command_stats().await;
    let incr_before = before.get("incr").copied().unwrap_or(0);
    assert_eq!(after.get("incr").copied(), Some(incr_before + 25));
    // The first INFO is counted once it has run, the second one not yet.
    let info_before = before.get("info").copied().unwrap_or(0);
    assert_eq!(
        after.get("info").copied(),
        Some(info_before + 1),
        "stats: {after:?}"
    );
    assert_eq!(after.get("decr"), None, "stats: {after:?}");
}

#[test]
fn command_stats_parses_info_output() {
    let info = "# Commandstats\r\n\
        cmdstat_set:calls=3,usec=12,usec_per_call=4.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_client|setinfo:calls=2,usec=1,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n\
        \r\n";
    let stats = parse_command_stats(info);
    assert_eq!(stats.len(), 2, "stats: {stats:?}");
    assert_eq!(stats.get("set"), Some(&3));
    assert_eq!(stats.get("client|setinfo"), Some(&2));
}

#[tokio::test]
async fn redis_server_is_gone_after_drop() {
    let redis = RedisServer::spawn().await;
    let pid = redis.pid().unwrap();
    let dir = redis.dir().to_path_buf();
    assert!(dir.is_dir());

    drop(redis);

    assert_process_gone(pid, "redis-server");
    assert!(!dir.exists(), "{} was not deleted", dir.display());
}

#[tokio::test]
async fn roomd_process_is_gone_after_drop() {
    let process = RoomdProcess::spawn(&[]).await;
    let pid = process.pid();

    drop(process);

    assert_process_gone(pid, "roomd");
}

#[tokio::test]
async fn roomd_process_sigstop_and_sigcont() {
    let mut process = RoomdProcess::spawn(&[]).await;
    let pid = process.pid();
    assert_ne!(process_state(pid), 'T');

    process.sigstop();
    wait_for_stopped_state(pid, true).await;
    assert!(
        !process.is_serving().await,
        "a stopped roomd reported serving"
    );

    process.sigcont();
    wait_for_stopped_state(pid, false).await;
    assert!(process.is_serving().await, "log:\n{}", process.log());
}

#[tokio::test]
async fn roomd_process_sigkill_ends_it() {
    let mut process = RoomdProcess::spawn(&[]).await;
    let pid = process.pid();

    let status = process.sigkill().await;

    assert_eq!(status.signal(), Some(9), "status: {status}");
    assert_eq!(process.exit_status(), Some(status));
    assert_process_gone(pid, "the killed roomd");
}

// The tests below start roomd with the clustering flags.

#[tokio::test]
async fn cluster_of_three_nodes_reports_serving() {
    let cluster = Cluster::start(3).await;
    cluster.wait_ready().await;

    assert_eq!(cluster.len(), 3);
    let mut addresses = Vec::new();
    for node in cluster.nodes() {
        assert!(node.address().ip().is_loopback());
        assert!(node.internal_address().ip().is_loopback());
        assert!(node.is_serving().await, "log:\n{}", node.log());
        addresses.push(node.address());
        addresses.push(node.internal_address());
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 6, "nodes share ports: {addresses:?}");

    // The nodes reached the shared Redis server through --redis-url.
    let stats = cluster.redis().command_stats().await;
    let calls: u64 = stats.values().sum();
    let own_calls: u64 = ["ping", "info", "client|setinfo", "hello"]
        .iter()
        .filter_map(|command| stats.get(*command))
        .sum();
    assert!(
        calls > own_calls,
        "Redis saw only the harness's commands: {stats:?}\n{}",
        cluster.logs()
    );
}

#[tokio::test]
async fn cluster_processes_are_gone_after_drop() {
    let cluster = Cluster::start(2).await;
    let node_pids: Vec<u32> = cluster.nodes().iter().map(|node| node.pid()).collect();
    let redis_pid = cluster.redis().pid().unwrap();

    drop(cluster);

    for pid in node_pids {
        assert_process_gone(pid, "a cluster node");
    }
    assert_process_gone(redis_pid, "the cluster's redis-server");
}

#[tokio::test]
async fn cluster_node_sigstop_and_sigcont() {
    let mut cluster = Cluster::start(2).await;
    let pid = cluster.node(1).pid();

    cluster.node_mut(1).sigstop();
    wait_for_stopped_state(pid, true).await;
    assert!(!cluster.node(1).is_serving().await);
    assert!(cluster.node(0).is_serving().await, "{}", cluster.logs());

    cluster.node_mut(1).sigcont();
    wait_for_stopped_state(pid, false).await;
    cluster.wait_ready().await;
}

#[tokio::test]
async fn cluster_node_sigterm_exits_zero() {
    let mut cluster = Cluster::start(2).await;

    let status = cluster.node_mut(1).terminate(Duration::from_secs(20)).await;

    assert!(status.success(), "status {status}:\n{}", cluster.logs());
    assert!(cluster.node(0).is_serving().await, "{}", cluster.logs());
}

#[tokio::test]
async fn cluster_node_restart_after_sigkill() {
    let mut cluster = Cluster::start(2).await;
    let old_pid = cluster.node(0).pid();

    let status = cluster.node_mut(0).sigkill().await;
    assert_eq!(status.signal(), Some(9), "status: {status}");
    cluster.node_mut(0).restart().await;

    let node = cluster.node(0);
    assert_ne!(node.pid(), old_pid);
    assert_process_gone(old_pid, "the killed node");
    assert!(node.is_serving().await, "log:\n{}", node.log());
    let log = node.log();
    assert!(log.contains(&format!("roomd pid {old_pid}")), "log:\n{log}");
    assert!(
        log.contains(&format!("roomd pid {}", node.pid())),
        "log:\n{log}"
    );
}

#[tokio::test]
async fn cluster_node_restart_kills_paused_process() {
    let mut cluster = Cluster::start(1).await;
    let old_pid = cluster.node(0).pid();
    cluster.node_mut(0).sigstop();
    wait_for_stopped_state(old_pid, true).await;

    cluster.node_mut(0).restart().await;

    assert_process_gone(old_pid, "the paused node");
    cluster.wait_ready().await;
}
