//! The `throughput` benchmark: CreateRoom, GetRoom and JoinRoom over real
//! gRPC on loopback against a roomd node in this process, and GetRoom
//! against the bare tonic reference in the same run.
//!
//! Both servers and all clients share this process's tokio runtime, so the
//! client's cost is charged to both servers alike and the GetRoom ratio
//! compares the servers alone. Phases run one at a time; the other server
//! is idle meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roomd_actors::RoomService;
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::{GetRoomRequest, JoinRoomRequest};
use roomd_server::caller::{ACCOUNT_HEADER, ORG_HEADER};
use roomd_server::{RoomdServer, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Request;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::cli::{Operation, ThroughputArgs};
use crate::load::{self, Limit, Outcome, Plan};
use crate::reference::ReferenceServer;
use crate::report::{Phase, Target, ThroughputReport, ThroughputSetup};
use crate::rooms::{self, ORG, OWNER};

/// GetRoom requests per second of roomd over those of the bare handler
/// that the benchmark is expected to reach.
pub const GET_RATIO_TARGET: f64 = 0.70;

/// Tasks that create the rooms of a setup step.
const SETUP_CONCURRENCY: u32 = 8;

/// Join rate assumed for sizing the room pool when there is no warm-up to
/// measure it. A worker whose pool runs dry creates its next room itself,
/// and the report counts those creates.
const ASSUMED_JOINS_PER_SECOND: f64 = 20_000.0;

/// How long the roomd node may take to stop its room actors at the end.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(args: &ThroughputArgs) -> Result<ThroughputReport, String> {
    let mut ops = args.ops.clone();
    ops.sort();
    ops.dedup();

    let node = Node::start().await?;
    let roomd_channels = connect(&node.address, args).await?;
    let plan = Plan {
        concurrency: args.concurrency as usize,
        warmup: args.warmup,
        limit: match args.requests {
            Some(count) => Limit::Requests(count),
            None => Limit::Duration(args.duration),
        },
    };

    let mut phases = Vec::new();
    let mut get_ratio = None;
    if ops.contains(&Operation::Get) {
        let room_ids: Arc<[String]> =
            rooms::create_many(&node.service, args.get_rooms, SETUP_CONCURRENCY)
                .await?
                .into();
        let sample = fetch_room(&roomd_channels[0], &room_ids[0]).await?;
        let reference = ReferenceServer::start(sample).await?;
        let reference_channels = connect(&reference.address.to_string(), args).await?;

        // The reference goes first so that neither server runs on a heap
        // the other one grew.
        let bare = load::run(plan, get_workers(&reference_channels, &room_ids, args)).await?;
        let roomd = load::run(plan, get_workers(&roomd_channels, &room_ids, args)).await?;
        drop(reference_channels);
        reference.stop().await?;

        let ratio = ratio(&roomd, &bare);
        get_ratio = Some(Target::at_least(ratio, GET_RATIO_TARGET));
        phases.push(Phase::new("GetRoom", "bare tonic", &bare, None));
        phases.push(Phase::new("GetRoom", "roomd", &roomd, None));
    }
    if ops.contains(&Operation::Create) {
        let workers = (0..args.concurrency as usize)
            .map(|index| CreateWorker {
                client: client(&roomd_channels, index, args),
                owner: MetadataValue::from_static(OWNER),
            })
            .collect();
        let created = load::run(plan, workers).await?;
        phases.push(Phase::new("CreateRoom", "roomd", &created, None));
    }
    if ops.contains(&Operation::Join) {
        let (joined, inline_creates) =
            run_joins(&node.service, &roomd_channels, plan, args).await?;
        let note = format!(
            "{} joins per room; {inline_creates} rooms created inside the window when the pre-made pool ran out (not counted as joins)",
            args.joins_per_room
        );
        phases.push(Phase::new("JoinRoom", "roomd", &joined, Some(note)));
    }

    let live_rooms = node.service.live_rooms();
    let connections = roomd_channels.len();
    // Open connections would hold the node's graceful shutdown until its
    // grace period ends.
    drop(roomd_channels);
    node.stop().await;
    Ok(ThroughputReport {
        setup: ThroughputSetup::new(args, connections, live_rooms),
        phases,
        get_ratio,
    })
}

/// The roomd node under test, serving on a free port of 127.0.0.1.
struct Node {
    address: String,
    service: RoomService,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), roomd_server::ServerError>>,
}

impl Node {
    async fn start() -> Result<Self, String> {
        let server = RoomdServer::start_in_memory(ServerConfig::default())
            .await
            .map_err(|e| format!("cannot start the roomd node: {e}"))?;
        let service = server.service().clone();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1 for roomd: {e}"))?;
        let address = listener
            .local_addr()
            .map_err(|e| format!("cannot read roomd's address: {e}"))?
            .to_string();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(Node {
            address,
            service,
            shutdown,
            task,
        })
    }

    /// Stops the node. A slow or failed stop is only reported on stderr,
    /// because the figures are already taken.
    async fn stop(self) {
        let _ = self.shutdown.send(());
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("roomd-bench: the roomd node failed while stopping: {e}"),
            Ok(Err(e)) => eprintln!("roomd-bench: the roomd node's task failed: {e}"),
            Err(_) => eprintln!(
                "roomd-bench: the roomd node did not stop within {} s",
                SHUTDOWN_TIMEOUT.as_secs()
            ),
        }
    }
}

/// Opens ceil(concurrency / workers per connection) HTTP/2 connections.
async fn connect(address: &str, args: &ThroughputArgs) -> Result<Vec<Channel>, String> {
    let connections = args.concurrency.div_ceil(args.workers_per_connection);
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| format!("invalid server address {address}: {e}"))?;
    let mut channels = Vec::with_capacity(connections as usize);
    for _ in 0..connections {
        // Each connect() opens its own connection; clones of a Channel
        // share one.
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| format!("cannot connect to {address}: {e}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

fn client(channels: &[Channel], worker: usize, args: &ThroughputArgs) -> RoomsClient<Channel> {
    let connection = worker / args.workers_per_connection as usize;
    RoomsClient::new(channels[connection].clone())
}

/// Builds a request that acts for `account` in the benchmark org.
fn request<T>(message: T, account: AsciiMetadataValue) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(ORG_HEADER, MetadataValue::from_static(ORG));
    request.metadata_mut().insert(ACCOUNT_HEADER, account);
    request
}

async fn fetch_room(channel: &Channel, room_id: &str) -> Result<roomd_proto::v1::Room, String> {
    let message = GetRoomRequest {
        room_id: room_id.to_owned(),
    };
    RoomsClient::new(channel.clone())
        .get_room(request(message, MetadataValue::from_static(OWNER)))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| format!("cannot read back room {room_id}: {status}"))
}

fn ratio(roomd: &Outcome, bare: &Outcome) -> f64 {
    let bare_rate = bare.requests_per_second();
    if bare_rate == 0.0 {
        return 0.0;
    }
    roomd.requests_per_second() / bare_rate
}

struct GetWorker {
    client: RoomsClient<Channel>,
    room_ids: Arc<[String]>,
    next: usize,
    owner: AsciiMetadataValue,
}

fn get_workers(
    channels: &[Channel],
    room_ids: &Arc<[String]>,
    args: &ThroughputArgs,
) -> Vec<GetWorker> {
    (0..args.concurrency as usize)
        .map(|index| GetWorker {
            client: client(channels, index, args),
            room_ids: room_ids.clone(),
            // Spread the workers over the rooms so that they do not queue on
            // one room actor.
            next: index * room_ids.len() / args.concurrency as usize,
            owner: MetadataValue::from_static(OWNER),
        })
        .collect()
}

impl load::Operation for GetWorker {
    async fn call(&mut self) -> Result<(), String> {
        let room_id = self.room_ids[self.next % self.room_ids.len()].clone();
        self.next += 1;
        let message = GetRoomRequest { room_id };
        self.client
            .get_room(request(message, self.owner.clone()))
            .await
            .map(drop)
            .map_err(|status| format!("GetRoom failed: {status}"))
    }
}

struct CreateWorker {
    client: RoomsClient<Channel>,
    owner: AsciiMetadataValue,
}

impl load::Operation for CreateWorker {
    async fn call(&mut self) -> Result<(), String> {
        self.client
            .create_room(request(rooms::create_request(), self.owner.clone()))
            .await
            .map(drop)
            .map_err(|status| format!("CreateRoom failed: {status}"))
    }
}

/// Rooms made before the measured window for the join workers to fill.
type RoomPool = Arc<Mutex<Vec<String>>>;

/// Measures JoinRoom. A first run of the warm-up's length measures the join
/// rate, which sizes the pool of rooms that are then created ahead of the
/// measured window, so that room creation stays out of it.
async fn run_joins(
    service: &RoomService,
    channels: &[Channel],
    plan: Plan,
    args: &ThroughputArgs,
) -> Result<(Outcome, u64), String> {
    let accounts = Arc::new(AtomicU64::new(0));
    let inline_creates = Arc::new(AtomicU64::new(0));
    let joins_per_room = u64::from(args.joins_per_room);

    let mut estimated_rate = ASSUMED_JOINS_PER_SECOND;
    if !plan.warmup.is_zero() {
        let warmup = Plan {
            warmup: Duration::ZERO,
            limit: Limit::Duration(plan.warmup),
            ..plan
        };
        let workers = join_workers(
            channels,
            &RoomPool::default(),
            &accounts,
            &inline_creates,
            args,
        );
        estimated_rate = load::run(warmup, workers).await?.requests_per_second();
    }

    let expected_joins = match plan.limit {
        Limit::Requests(count) => count as f64,
        // Half again as many as the warm-up rate predicts, because the
        // warm-up also spent time creating its rooms.
        Limit::Duration(window) => estimated_rate * window.as_secs_f64() * 1.5,
    };
    // Each worker may leave its last room partly filled.
    let pool_size =
        (expected_joins / joins_per_room as f64).ceil() as u64 + u64::from(args.concurrency);
    let pool_size = u32::try_from(pool_size).map_err(|_| {
        format!("the join benchmark would need {pool_size} rooms; lower --requests or --duration")
    })?;
    let pool: RoomPool = Arc::new(Mutex::new(
        rooms::create_many(service, pool_size, SETUP_CONCURRENCY).await?,
    ));

    inline_creates.store(0, Ordering::Relaxed);
    let workers = join_workers(channels, &pool, &accounts, &inline_creates, args);
    let measured = Plan {
        warmup: Duration::ZERO,
        ..plan
    };
    let outcome = load::run(measured, workers).await?;
    Ok((outcome, inline_creates.load(Ordering::Relaxed)))
}

struct JoinWorker {
    client: RoomsClient<Channel>,
    pool: RoomPool,
    room_id: Option<String>,
    joins_left: u64,
    joins_per_room: u64,
    /// Source of account numbers, shared so that every join in the run uses
    /// a new account.
    accounts: Arc<AtomicU64>,
    account: AsciiMetadataValue,
    inline_creates: Arc<AtomicU64>,
    owner: AsciiMetadataValue,
}

fn join_workers(
    channels: &[Channel],
    pool: &RoomPool,
    accounts: &Arc<AtomicU64>,
    inline_creates: &Arc<AtomicU64>,
    args: &ThroughputArgs,
) -> Vec<JoinWorker> {
    (0..args.concurrency as usize)
        .map(|index| JoinWorker {
            client: client(channels, index, args),
            pool: pool.clone(),
            room_id: None,
            joins_left: 0,
            joins_per_room: u64::from(args.joins_per_room),
            accounts: accounts.clone(),
            account: MetadataValue::from_static(OWNER),
            inline_creates: inline_creates.clone(),
            owner: MetadataValue::from_static(OWNER),
        })
        .collect()
}

impl JoinWorker {
    async fn next_room(&mut self) -> Result<String, String> {
        let pooled = self
            .pool
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        if let Some(room_id) = pooled {
            return Ok(room_id);
        }
        self.inline_creates.fetch_add(1, Ordering::Relaxed);
        let created = self
            .client
            .create_room(request(rooms::create_request(), self.owner.clone()))
            .await
            .map_err(|status| format!("CreateRoom for the join benchmark failed: {status}"))?;
        Ok(created.into_inner().id)
    }
}

impl load::Operation for JoinWorker {
    async fn prepare(&mut self) -> Result<(), String> {
        if self.joins_left == 0 || self.room_id.is_none() {
            self.room_id = Some(self.next_room().await?);
            self.joins_left = self.joins_per_room;
        }
        let number = self.accounts.fetch_add(1, Ordering::Relaxed);
        self.account = AsciiMetadataValue::try_from(format!("bench-joiner-{number}"))
            .map_err(|e| format!("invalid account header: {e}"))?;
        Ok(())
    }

    async fn call(&mut self) -> Result<(), String> {
        self.joins_left -= 1;
        let message = JoinRoomRequest {
            room_id: self.room_id.clone().unwrap_or_default(),
            // Empty: the acting account joins itself.
            account: String::new(),
        };
        self.client
            .join_room(request(message, self.account.clone()))
            .await
            .map(drop)
            .map_err(|status| format!("JoinRoom failed: {status}"))
    }
}
