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
use roomd_proto::v1::JoinRoomRequest;
use roomd_proto::v1::rooms_client::RoomsClient;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::Channel;

use crate::cli::{Operation, ThroughputArgs};
use crate::client::{client, connect, create_workers, fetch_room, get_workers, request};
use crate::load::{self, Limit, Outcome, Plan, ratio};
use crate::node::Node;
use crate::reference::ReferenceServer;
use crate::report::{Phase, Target, ThroughputReport, ThroughputSetup};
use crate::rooms::{self, OWNER};

/// GetRoom requests per second of roomd over those of the bare handler
/// that the benchmark is expected to reach.
pub const GET_RATIO_TARGET: f64 = 0.70;

/// Tasks that create the rooms of a setup step.
const SETUP_CONCURRENCY: u32 = 8;

/// Join rate assumed for sizing the room pool when there is no warm-up to
/// measure it. A worker whose pool runs dry creates its next room itself,
/// and the report counts those creates.
const ASSUMED_JOINS_PER_SECOND: f64 = 20_000.0;

pub async fn run(args: &ThroughputArgs) -> Result<ThroughputReport, String> {
    let mut ops = args.ops.clone();
    ops.sort();
    ops.dedup();

    let node = Node::start_in_memory().await?;
    let roomd_channels = connect(&node.address, &args.load).await?;
    let plan = args.load.plan();

    let mut phases = Vec::new();
    let mut get_ratio = None;
    if ops.contains(&Operation::Get) {
        let room_ids: Arc<[String]> =
            rooms::create_many(&node.service, args.get_rooms, SETUP_CONCURRENCY)
                .await?
                .into();
        let sample = fetch_room(&roomd_channels[0], &room_ids[0]).await?;
        let reference = ReferenceServer::start(sample).await?;
        let reference_channels = connect(&reference.address.to_string(), &args.load).await?;

        // The reference goes first so that neither server runs on a heap
        // the other one grew.
        let bare = load::run(
            plan,
            get_workers(&reference_channels, &room_ids, &args.load),
        )
        .await?;
        let roomd = load::run(plan, get_workers(&roomd_channels, &room_ids, &args.load)).await?;
        drop(reference_channels);
        reference.stop().await?;

        let ratio = ratio(&roomd, &bare);
        get_ratio = Some(Target::at_least(ratio, GET_RATIO_TARGET));
        phases.push(Phase::new("GetRoom", "bare tonic", &bare, None));
        phases.push(Phase::new("GetRoom", "roomd", &roomd, None));
    }
    if ops.contains(&Operation::Create) {
        let workers = create_workers(&roomd_channels, &args.load);
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
        (expected_joins / joins_per_room as f64).ceil() as u64 + u64::from(args.load.concurrency);
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
    (0..args.load.concurrency as usize)
        .map(|index| JoinWorker {
            client: client(channels, index, &args.load),
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
