//! The `failover` benchmark: three roomd processes on one Redis, every room
//! owned by node A, then SIGKILL to A and the time until GetRoom succeeds again for
//! every room through B or C.
//!
//! A starts alone and creates the rooms over gRPC, so that placement has no
//! other node to send them to. B and C start after. Once A is killed,
//! workers poll the rooms not served yet, half through B and half through
//! C. A room counts as served at its first successful GetRoom. Rooms come back
//! both ways: a request to B or C for a room of a node it sees as dead
//! claims the room, and the survivors' adoption scans claim the rest.

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roomd_proto::v1::GetRoomRequest;
use roomd_proto::v1::rooms_client::RoomsClient;
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::cli::{FailoverArgs, LoadArgs};
use crate::client::{connect, create_workers, request};
use crate::load::{self, Limit, Plan};
use crate::redis_server::{RedisServer, RunDir, free_port};
use crate::report::{FailoverReport, NodeRooms, Target};
use crate::rooms::OWNER;

/// Time added to the node TTL for the bound the failover is expected to
/// meet: the survivors look for dead nodes about once a second.
const BOUND_SLACK: Duration = Duration::from_secs(2);

/// How long a roomd process may take to serve after it started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one GetRoom of the poll may take before it counts as failed
/// and its room goes back in the queue.
const POLL_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Workers that share one HTTP/2 connection.
const WORKERS_PER_CONNECTION: u32 = 8;

/// A well-formed room id that no room has, for readiness checks.
const UNKNOWN_ROOM_ID: &str = "00000000-0000-7000-8000-000000000000";

pub async fn run(args: &FailoverArgs) -> Result<FailoverReport, String> {
    if !args.roomd.is_file() {
        return Err(format!(
            "{} does not exist; build it with `cargo build --release -p roomd-server --bin roomd` or pass --roomd",
            args.roomd.display()
        ));
    }
    let dir = RunDir::new(args.log_dir.as_deref())?;
    match measure(args, &dir).await {
        Ok(report) => Ok(report),
        // Keep the logs that the error message may point to.
        Err(message) => match dir {
            RunDir::Temporary(temporary) => Err(format!(
                "{message} (logs kept in {})",
                temporary.keep().display()
            )),
            RunDir::Kept(_) => Err(message),
        },
    }
}

async fn measure(args: &FailoverArgs, dir: &RunDir) -> Result<FailoverReport, String> {
    let redis = RedisServer::start(&args.redis, dir.path()).await?;

    let mut node_a = RoomdProcess::start(args, &redis.url, dir.path(), "a").await?;
    let create_load = LoadArgs {
        concurrency: args.concurrency.min(64),
        workers_per_connection: WORKERS_PER_CONNECTION,
        duration: Duration::from_secs(1),
        requests: Some(u64::from(args.rooms)),
        warmup: Duration::ZERO,
    };
    let create_started = Instant::now();
    let channels = connect(&node_a.public, &create_load).await?;
    let plan = Plan {
        concurrency: create_load.concurrency as usize,
        warmup: Duration::ZERO,
        limit: Limit::Requests(u64::from(args.rooms)),
    };
    let created = load::run(plan, create_workers(&channels, &create_load)).await?;
    drop(channels);
    if let Some(error) = created.first_error {
        return Err(format!(
            "{} of {} creates through node A failed; first error: {error}",
            created.errors, args.rooms
        ));
    }
    let create_seconds = create_started.elapsed().as_secs_f64();

    let node_b = RoomdProcess::start(args, &redis.url, dir.path(), "b").await?;
    let node_c = RoomdProcess::start(args, &redis.url, dir.path(), "c").await?;

    let nodes = redis.nodes_by_address().await?;
    let node_a_id = node_id(&nodes, &node_a)?;
    let room_ids = redis.rooms_of(&node_a_id).await?;
    if room_ids.len() != args.rooms as usize {
        return Err(format!(
            "node A owns {} rooms in Redis, not the {} it created",
            room_ids.len(),
            args.rooms
        ));
    }

    let poll_load = LoadArgs {
        concurrency: args.concurrency.div_ceil(2),
        ..create_load
    };
    let b_channels = connect(&node_b.public, &poll_load).await?;
    let c_channels = connect(&node_c.public, &poll_load).await?;

    let killed_at = Instant::now();
    node_a.kill().await?;
    let polled = poll_until_served(
        room_ids,
        &b_channels,
        &c_channels,
        args.concurrency,
        killed_at,
        args.max_wait,
    )
    .await?;

    let nodes = redis.nodes_by_address().await?;
    let mut owners = Vec::new();
    for (name, process) in [("B", &node_b), ("C", &node_c)] {
        let id = node_id(&nodes, process)?;
        owners.push(NodeRooms {
            node: name,
            rooms: redis.room_count_of(&id).await?,
            node_id: id,
        });
    }
    owners.push(NodeRooms {
        node: "A (killed)",
        rooms: redis.room_count_of(&node_a_id).await?,
        node_id: node_a_id,
    });

    let bound = Duration::from_secs(args.node_ttl) + BOUND_SLACK;
    let mut served = polled.served_after;
    served.sort();
    let quantile = |q: f64| -> Option<f64> {
        let last = served.len().checked_sub(1)?;
        let index = ((last as f64) * q).round() as usize;
        Some(served[index].as_secs_f64())
    };
    let all_served = served.len() == args.rooms as usize;
    let last = quantile(1.0);
    Ok(FailoverReport {
        rooms: args.rooms,
        node_ttl_seconds: args.node_ttl,
        concurrency: args.concurrency,
        redis: redis.setup.clone(),
        create_seconds,
        served: served.len(),
        first_served_seconds: quantile(0.0),
        median_served_seconds: quantile(0.5),
        all_served_seconds: if all_served { last } else { None },
        failed_attempts: polled.failed_attempts,
        first_error: polled.first_error,
        answered_by_b: polled.answered[0],
        answered_by_c: polled.answered[1],
        owners,
        log_dir: args.log_dir.as_ref().map(|dir| dir.display().to_string()),
        // A run that did not serve every room within --max-wait misses
        // the bound whatever the bound is.
        failover: Target::at_most(
            if all_served {
                last.unwrap_or(0.0)
            } else {
                f64::INFINITY
            },
            bound.as_secs_f64(),
        ),
    })
}

/// One roomd child process with its two addresses on 127.0.0.1. Dropping
/// it kills the process with SIGKILL.
struct RoomdProcess {
    public: String,
    internal: String,
    child: Child,
}

impl RoomdProcess {
    /// Starts the roomd binary as a cluster node with its log in
    /// `dir/node-<name>.log`, and waits until it serves GetRoom.
    async fn start(
        args: &FailoverArgs,
        redis_url: &str,
        dir: &Path,
        name: &str,
    ) -> Result<Self, String> {
        let public = format!("127.0.0.1:{}", free_port()?);
        let internal = format!("127.0.0.1:{}", free_port()?);
        let log_path = dir.join(format!("node-{name}.log"));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let child = Command::new(&args.roomd)
            .arg("--redis-url")
            .arg(redis_url)
            .arg("--node-ttl")
            .arg(args.node_ttl.to_string())
            .arg("--listen")
            .arg(&public)
            .arg("--internal-listen")
            .arg(&internal)
            .arg("--log")
            .arg("info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", args.roomd.display()))?;
        let mut process = RoomdProcess {
            public,
            internal,
            child,
        };
        process.wait_until_serving(&log_path).await?;
        Ok(process)
    }

    /// Sends GetRoom for an unknown room until the node returns NOT_FOUND.
    async fn wait_until_serving(&mut self, log_path: &Path) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", self.public))
            .map_err(|e| format!("invalid address {}: {e}", self.public))?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(1));
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "roomd on {} exited with {status} while starting; see {}",
                    self.public,
                    log_path.display()
                ));
            }
            if let Ok(channel) = endpoint.connect().await {
                let message = GetRoomRequest {
                    room_id: UNKNOWN_ROOM_ID.to_owned(),
                };
                let answer = RoomsClient::new(channel)
                    .get_room(request(message, MetadataValue::from_static(OWNER)))
                    .await;
                if let Err(status) = answer
                    && status.code() == tonic::Code::NotFound
                {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "roomd on {} did not serve within {} s; see {}",
                    self.public,
                    START_TIMEOUT.as_secs(),
                    log_path.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the process with SIGKILL and waits until it is gone.
    async fn kill(&mut self) -> Result<(), String> {
        self.child
            .kill()
            .await
            .map_err(|e| format!("cannot kill roomd on {}: {e}", self.public))
    }
}

/// Returns the id under which the node of `process` registered, found by
/// its internal address.
fn node_id(
    nodes: &std::collections::HashMap<String, roomd_store::NodeInfo>,
    process: &RoomdProcess,
) -> Result<String, String> {
    nodes
        .get(&process.internal)
        .map(|info| info.id.to_string())
        .ok_or_else(|| {
            format!(
                "no node with the internal address {} is registered in Redis",
                process.internal
            )
        })
}

struct Polled {
    /// Time from the kill to each room's first successful GetRoom.
    served_after: Vec<Duration>,
    failed_attempts: u64,
    first_error: Option<String>,
    /// Successful GetRooms through B and through C.
    answered: [u64; 2],
}

/// Polls the rooms through B (even workers) and C (odd workers) until each
/// room was served once or `max_wait` after `killed_at` has passed.
async fn poll_until_served(
    room_ids: Vec<String>,
    b_channels: &[Channel],
    c_channels: &[Channel],
    concurrency: u32,
    killed_at: Instant,
    max_wait: Duration,
) -> Result<Polled, String> {
    let total = room_ids.len() as u64;
    let queue = Arc::new(Mutex::new(VecDeque::from(room_ids)));
    let served = Arc::new(AtomicU64::new(0));
    let deadline = killed_at + max_wait;

    let mut workers = JoinSet::new();
    for index in 0..concurrency as usize {
        let (node, channels) = if index % 2 == 0 {
            (0, b_channels)
        } else {
            (1, c_channels)
        };
        let connection = (index / 2) / WORKERS_PER_CONNECTION as usize;
        let worker = PollWorker {
            client: RoomsClient::new(channels[connection % channels.len()].clone()),
            queue: queue.clone(),
            served: served.clone(),
            total,
            killed_at,
            deadline,
        };
        workers.spawn(async move { (node, worker.run().await) });
    }

    let mut polled = Polled {
        served_after: Vec::with_capacity(total as usize),
        failed_attempts: 0,
        first_error: None,
        answered: [0, 0],
    };
    while let Some(joined) = workers.join_next().await {
        let (node, result) = joined.map_err(|e| format!("a poll worker panicked: {e}"))?;
        polled.answered[node] += result.served_after.len() as u64;
        polled.served_after.extend(result.served_after);
        polled.failed_attempts += result.failed_attempts;
        if polled.first_error.is_none() {
            polled.first_error = result.first_error;
        }
    }
    Ok(polled)
}

struct PollWorker {
    client: RoomsClient<Channel>,
    queue: Arc<Mutex<VecDeque<String>>>,
    served: Arc<AtomicU64>,
    total: u64,
    killed_at: Instant,
    deadline: Instant,
}

struct PollResult {
    served_after: Vec<Duration>,
    failed_attempts: u64,
    first_error: Option<String>,
}

impl PollWorker {
    /// Takes the next room not served yet, sends GetRoom for it, and puts
    /// it back at the end of the queue when the request fails.
    async fn run(mut self) -> PollResult {
        let mut result = PollResult {
            served_after: Vec::new(),
            failed_attempts: 0,
            first_error: None,
        };
        while Instant::now() < self.deadline && self.served.load(Ordering::Relaxed) < self.total {
            let next = self
                .queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .pop_front();
            // An empty queue means the remaining rooms are in flight at
            // other workers, which put them back if they fail.
            let Some(room_id) = next else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };

            let message = GetRoomRequest {
                room_id: room_id.clone(),
            };
            let call = self
                .client
                .get_room(request(message, MetadataValue::from_static(OWNER)));
            let error = match tokio::time::timeout(POLL_REQUEST_TIMEOUT, call).await {
                Ok(Ok(_)) => {
                    result.served_after.push(self.killed_at.elapsed());
                    self.served.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Ok(Err(status)) => format!("GetRoom {room_id} failed: {status}"),
                Err(_) => format!(
                    "GetRoom {room_id} timed out after {} s",
                    POLL_REQUEST_TIMEOUT.as_secs()
                ),
            };
            result.failed_attempts += 1;
            result.first_error.get_or_insert(error);
            self.queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push_back(room_id);
        }
        result
    }
}
