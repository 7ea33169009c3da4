//! The workload: clients that create, join, leave, update, close, delete,
//! read and find rooms on every node, and watchers that follow rooms'
//! events across reconnections. Every request and every watch goes into
//! the history.
//!
//! Each client draws its requests from its own random stream, seeded from
//! the run's seed, so a seed replays the same sequence of request kinds,
//! parameters, nodes and pauses. Which room a request picks depends on the
//! rooms made so far, which races between clients can change.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::{
    CloseRoomRequest, CreateRoomRequest, DeleteRoomRequest, FindRoomsRequest, GetRoomRequest,
    JoinRoomRequest, LeaveRoomRequest, RoomConfigurationInput, UpdateRoomRequest, WatchRoomRequest,
};
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::client::{self, outcome, request, snapshot};
use crate::history::{Entry, LogEvent, Op, Outcome, RequestRecord, WatchRecord};
use crate::recorder::Recorder;

/// Accounts that join and leave rooms; few, so that rooms fill up.
const ACCOUNTS: [&str; 5] = ["acc1", "acc2", "acc3", "acc4", "acc5"];
/// Requests pick rooms among this many most recent ones.
const RECENT_ROOMS: usize = 40;
/// Maximum time a watcher follows one room.
const WATCH_SPAN: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub seed: u64,
    pub clients: u32,
    pub watchers: u32,
    /// The org with `maxOpenRooms`, and the org without.
    pub limited_org: String,
    pub free_org: String,
}

impl Shared {
    /// Opens a connection of its own to each node, through the proxies.
    fn connect(&self) -> Vec<RoomsClient<Channel>> {
        self.nodes
            .iter()
            .map(|&proxy| client::rooms_client(proxy))
            .collect()
    }
}

/// Rooms made so far, shared by the clients.
#[derive(Default)]
pub struct KnownRooms {
    rooms: Mutex<Vec<(String, String)>>,
}

impl KnownRooms {
    fn add(&self, org: &str, room: &str) {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if !rooms
            .iter()
            .rev()
            .take(RECENT_ROOMS)
            .any(|(_, id)| id == room)
        {
            rooms.push((org.to_owned(), room.to_owned()));
        }
    }

    /// Picks one of the most recent rooms.
    fn pick(&self, rng: &mut StdRng) -> Option<(String, String)> {
        let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if rooms.is_empty() {
            return None;
        }
        let recent = rooms.len().min(RECENT_ROOMS);
        let index = rooms.len() - 1 - rng.random_range(0..recent);
        rooms.get(index).cloned()
    }

    pub fn all(&self) -> Vec<(String, String)> {
        self.rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// State shared by clients and watchers.
pub struct Shared {
    pub config: WorkloadConfig,
    /// The proxy in front of each node, which clients connect through.
    pub nodes: Vec<std::net::SocketAddr>,
    pub recorder: Arc<Recorder>,
    pub rooms: KnownRooms,
}

/// Runs every client and watcher until `until`.
pub async fn run(shared: Arc<Shared>, until: Instant) {
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..shared.config.clients {
        tasks.spawn(run_client(shared.clone(), client, until));
    }
    for watcher in 0..shared.config.watchers {
        tasks.spawn(run_watcher(shared.clone(), watcher, until));
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a workload task failed");
        }
    }
}

fn stream_rng(seed: u64, stream: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// A client's own connection to each node.
type Connections = [RoomsClient<Channel>];

async fn run_client(shared: Arc<Shared>, client: u32, until: Instant) {
    let mut rng = stream_rng(shared.config.seed, u64::from(client) + 1);
    let nodes = shared.connect();
    while Instant::now() < until {
        let node = rng.random_range(0..shared.nodes.len());
        let pause = Duration::from_millis(rng.random_range(10..80));
        let kind = rng.random_range(0..100u32);
        if kind < 8 || shared.rooms.pick(&mut rng).is_none() {
            create(&shared, &nodes, client, node, &mut rng).await;
        } else if let Some((org, room)) = shared.rooms.pick(&mut rng) {
            let op = pick_op(kind, &mut rng);
            call(&shared, &nodes, client, node, &org, &room, op).await;
        }
        tokio::time::sleep(pause).await;
    }
}

/// Maps a draw in 8..100 to a request on an existing room.
fn pick_op(kind: u32, rng: &mut StdRng) -> Op {
    let account = ACCOUNTS[rng.random_range(0..ACCOUNTS.len())].to_owned();
    match kind {
        8..28 => Op::Get,
        28..31 => Op::Find,
        31..55 => Op::Join { account },
        55..72 => Op::Leave { account },
        72..80 => Op::UpdateLabel {
            label: format!("visit {}", rng.random_range(0..1000u32)),
        },
        80..86 => Op::AclPush {
            entry: format!("account.{account}.read"),
        },
        86..91 => Op::AclPull {
            entry: format!("account.{account}.read"),
        },
        91..97 => Op::Close,
        _ => Op::Delete,
    }
}

async fn create(shared: &Shared, nodes: &Connections, client: u32, node: usize, rng: &mut StdRng) {
    let limited = rng.random_bool(0.5);
    let org = if limited {
        shared.config.limited_org.clone()
    } else {
        shared.config.free_org.clone()
    };
    let short = limited || rng.random_bool(0.4);
    let op = Op::Create {
        request_id: format!("c{client}-{}", rng.random::<u64>()),
        max_participants: rng.random_range(2..=4),
        unused_timeout: if short { rng.random_range(2..=6) } else { 300 },
        empty_timeout: if rng.random_bool(0.4) {
            rng.random_range(2..=5)
        } else {
            300
        },
        max_duration: rng.random_bool(0.15).then(|| rng.random_range(8..=20)),
    };

    let record = call(shared, nodes, client, node, &org, "", op.clone()).await;
    if matches!(record.outcome, Outcome::Unknown { .. }) {
        // The create may have been applied; the same request id returns the
        // room it made, so ask another node.
        let other = (node + 1) % nodes.len();
        call(shared, nodes, client, other, &org, "", op).await;
    }
}

/// Sends one request, records it, and remembers rooms it made.
async fn call(
    shared: &Shared,
    nodes: &Connections,
    client: u32,
    node: usize,
    org: &str,
    room: &str,
    op: Op,
) -> RequestRecord {
    let mut rooms = nodes[node].clone();
    let start = Utc::now();
    let (outcome, result) = send(&mut rooms, org, room, &op).await;
    let record = RequestRecord {
        id: shared.recorder.next_id(),
        client,
        node,
        org: org.to_owned(),
        room: (!room.is_empty()).then(|| room.to_owned()),
        op,
        start,
        end: Utc::now(),
        outcome,
        result,
    };
    if let Some(made) = &record.result
        && matches!(record.op, Op::Create { .. })
    {
        shared.rooms.add(org, &made.id);
    }
    shared.recorder.record(Entry::Request(record.clone()));
    record
}

async fn send(
    rooms: &mut RoomsClient<Channel>,
    org: &str,
    room: &str,
    op: &Op,
) -> (Outcome, Option<crate::history::RoomSnapshot>) {
    let room_id = room.to_owned();
    let (outcome, room) = match op {
        Op::Create {
            request_id,
            max_participants,
            unused_timeout,
            empty_timeout,
            max_duration,
        } => {
            let message = CreateRoomRequest {
                label: "chaos visit".into(),
                acl: vec!["account.public.read".into()],
                configuration: Some(RoomConfigurationInput {
                    max_participants: Some(*max_participants),
                    unused_timeout: Some(*unused_timeout),
                    empty_timeout: Some(*empty_timeout),
                    max_duration: *max_duration,
                    open_at: None,
                }),
                open: true,
                request_id: request_id.clone(),
                ..CreateRoomRequest::default()
            };
            outcome(rooms.create_room(request(org, message))).await
        }
        Op::Get => outcome(rooms.get_room(request(org, GetRoomRequest { room_id }))).await,
        Op::Find => {
            let message = FindRoomsRequest {
                filter_json: r#"{"state": {"$eq": "open"}}"#.into(),
                limit: 20,
                ..FindRoomsRequest::default()
            };
            let (outcome, _) = outcome(rooms.find_rooms(request(org, message))).await;
            return (outcome, None);
        }
        Op::Join { account } => {
            let message = JoinRoomRequest {
                room_id,
                account: account.clone(),
            };
            outcome(rooms.join_room(request(org, message))).await
        }
        Op::Leave { account } => {
            let message = LeaveRoomRequest {
                room_id,
                account: account.clone(),
            };
            outcome(rooms.leave_room(request(org, message))).await
        }
        Op::UpdateLabel { label } => {
            let update = serde_json::json!({"$set": {"label": label}});
            outcome(rooms.update_room(request(org, update_request(room_id, &update)))).await
        }
        Op::AclPush { entry } => {
            let update = serde_json::json!({"$push": {"acl": [entry]}});
            outcome(rooms.update_room(request(org, update_request(room_id, &update)))).await
        }
        Op::AclPull { entry } => {
            let update = serde_json::json!({"$pull": {"acl": [entry]}});
            outcome(rooms.update_room(request(org, update_request(room_id, &update)))).await
        }
        Op::Close => outcome(rooms.close_room(request(org, CloseRoomRequest { room_id }))).await,
        Op::Delete => {
            let (outcome, _) =
                outcome(rooms.delete_room(request(org, DeleteRoomRequest { room_id }))).await;
            return (outcome, None);
        }
    };
    (outcome, room.as_ref().map(snapshot))
}

fn update_request(room_id: String, update: &serde_json::Value) -> UpdateRoomRequest {
    UpdateRoomRequest {
        room_id,
        update_json: update.to_string(),
        expected_version: None,
    }
}

async fn run_watcher(shared: Arc<Shared>, watcher: u32, until: Instant) {
    let mut rng = stream_rng(shared.config.seed, 10_000 + u64::from(watcher));
    let nodes = shared.connect();
    while Instant::now() < until {
        let Some((org, room)) = shared.rooms.pick(&mut rng) else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let node = rng.random_range(0..shared.nodes.len());
        let stop = until.min(Instant::now() + WATCH_SPAN);
        let record = watch(&nodes, watcher, node, &org, &room, stop).await;
        shared.recorder.record(Entry::Watch(record));
    }
}

/// Follows a room's events from seq 1 until it closes or `stop`, moving to
/// the next node whenever a stream breaks.
async fn watch(
    nodes: &Connections,
    watcher: u32,
    first_node: usize,
    org: &str,
    room: &str,
    stop: Instant,
) -> WatchRecord {
    let mut record = WatchRecord {
        watcher,
        room: room.to_owned(),
        from_seq: 1,
        start: Utc::now(),
        end: Utc::now(),
        streams: 0,
        events: Vec::new(),
    };
    let mut node = first_node;
    let mut finished = false;
    while !finished && Instant::now() < stop {
        record.streams += 1;
        let from_seq = record.events.last().map_or(1, |event| event.seq + 1);
        let mut rooms = nodes[node].clone();
        let mut message = tonic::Request::new(WatchRoomRequest {
            room_id: room.to_owned(),
            from_seq,
        });
        if let Ok(org) = org.parse() {
            message.metadata_mut().insert("x-roomd-org", org);
        }
        let opened = tokio::time::timeout_at(stop, rooms.watch_room(message)).await;
        match opened {
            Err(_) => break,
            Ok(Err(status)) => {
                if gone(&status) {
                    break;
                }
            }
            Ok(Ok(stream)) => {
                finished = follow(stream.into_inner(), &mut record, stop).await;
            }
        }
        node = (node + 1) % nodes.len();
        if !finished {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    record.end = Utc::now();
    record
}

/// Tells whether a watch failed because the room is gone for good.
fn gone(status: &tonic::Status) -> bool {
    matches!(
        client::classify(status),
        Outcome::Fault { reason, .. } if reason == "notFound.room"
    )
}

/// Reads a stream until it ends, breaks or `stop` passes; returns whether
/// the room closed.
async fn follow(
    mut stream: tonic::Streaming<roomd_proto::v1::RoomEvent>,
    record: &mut WatchRecord,
    stop: Instant,
) -> bool {
    loop {
        match tokio::time::timeout_at(stop, stream.next()).await {
            Ok(Some(Ok(event))) => {
                let closed = event.name == "room.closed";
                record.events.push(log_event(&event));
                if closed {
                    return true;
                }
            }
            Ok(Some(Err(_)) | None) | Err(_) => return false,
        }
    }
}

pub fn log_event(event: &roomd_proto::v1::RoomEvent) -> LogEvent {
    let at = event
        .at
        .as_ref()
        .and_then(|at| {
            chrono::DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap_or(0))
        })
        .unwrap_or_default();
    LogEvent {
        seq: event.seq,
        name: event.name.clone(),
        version: event.version,
        epoch: event.epoch,
        at,
        account: event.account_id.clone(),
        reason: event.reason.clone(),
    }
}
