//! The history of a chaos run: every request with its start, end and
//! outcome, every fault the nemesis injected, what each watcher saw, and
//! the final state of every room. It is written as JSON lines, one
//! [`Entry`] per line, and is all the checker reads.

use std::io::{BufRead, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub type Time = DateTime<Utc>;

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum Entry {
    Run(RunInfo),
    Request(RequestRecord),
    Fault(FaultRecord),
    Watch(WatchRecord),
    Final(FinalRoom),
}

/// Settings and milestones of the run, which the checker's bounds depend on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub seed: u64,
    pub nodes: usize,
    pub node_ttl_secs: u64,
    /// How late a timer may fire after its deadline while the cluster
    /// recovers from a node's loss; Redis outages come on top.
    pub failover_bound_ms: u64,
    /// The org whose room definition sets `maxOpenRooms`, and that limit.
    pub limited_org: String,
    pub max_open_rooms: u32,
    pub started: Time,
    /// When the workload and the nemesis stopped.
    pub quiesced: Time,
    /// When the final state was read.
    pub finished: Time,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub id: u64,
    pub client: u32,
    /// Index of the node the request was sent to.
    pub node: usize,
    pub org: String,
    pub room: Option<String>,
    pub op: Op,
    pub start: Time,
    pub end: Time,
    pub outcome: Outcome,
    /// The room as the response returned it.
    pub result: Option<RoomSnapshot>,
}

/// A request and what it asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Create {
        request_id: String,
        max_participants: u32,
        unused_timeout: u32,
        empty_timeout: u32,
        max_duration: Option<u32>,
    },
    Get,
    Find,
    Join {
        account: String,
    },
    Leave {
        account: String,
    },
    UpdateLabel {
        label: String,
    },
    AclPush {
        entry: String,
    },
    AclPull {
        entry: String,
    },
    Close,
    Delete,
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::Get => "get",
            Op::Find => "find",
            Op::Join { .. } => "join",
            Op::Leave { .. } => "leave",
            Op::UpdateLabel { .. } => "update_label",
            Op::AclPush { .. } => "acl_push",
            Op::AclPull { .. } => "acl_pull",
            Op::Close => "close",
            Op::Delete => "delete",
        }
    }

    /// Tells whether the request may change the room.
    pub fn writes(&self) -> bool {
        !matches!(self, Op::Get | Op::Find)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// roomd returned a fault.
    Fault {
        code: String,
        reason: String,
    },
    /// No response from roomd: the connection died or the deadline passed.
    /// The request may or may not have been applied.
    Unknown {
        message: String,
    },
}

impl Outcome {
    pub fn label(&self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Fault { reason, .. } => reason.clone(),
            Outcome::Unknown { .. } => "unknown".into(),
        }
    }

    /// Tells whether the request may have been applied although it did not
    /// succeed: its outcome is unknown, or a store or owner was unavailable
    /// after the write may have reached the store.
    pub fn maybe_applied(&self) -> bool {
        match self {
            Outcome::Ok | Outcome::Unknown { .. } => true,
            Outcome::Fault { reason, .. } => reason.starts_with("unavailable."),
        }
    }
}

/// The parts of a room that the checker compares with the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomSnapshot {
    pub id: String,
    pub state: String,
    pub version: u64,
    pub last_seq: u64,
    pub connected: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub id: u64,
    pub kind: FaultKind,
    /// The node it hit, for faults aimed at one node.
    pub node: Option<usize>,
    pub start: Time,
    pub end: Time,
    /// Outcome of the fault, such as how many actors were killed.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    KillRoomActors,
    KillRegistry,
    KillNode,
    PauseNode,
    RestartRedis,
    CutConnections,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::KillRoomActors,
        FaultKind::KillRegistry,
        FaultKind::KillNode,
        FaultKind::PauseNode,
        FaultKind::RestartRedis,
        FaultKind::CutConnections,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillRoomActors => "kill_room_actors",
            FaultKind::KillRegistry => "kill_registry",
            FaultKind::KillNode => "kill_node",
            FaultKind::PauseNode => "pause_node",
            FaultKind::RestartRedis => "restart_redis",
            FaultKind::CutConnections => "cut_connections",
        }
    }
}

/// Everything one watcher saw of one room, across its reconnections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchRecord {
    pub watcher: u32,
    pub room: String,
    pub from_seq: u64,
    pub start: Time,
    pub end: Time,
    /// Streams opened, one more than the reconnections.
    pub streams: u32,
    pub events: Vec<LogEvent>,
}

/// An event of a room's log, as a watcher or the final read saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    pub seq: u64,
    pub name: String,
    pub version: u64,
    pub epoch: u64,
    pub at: Time,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// A room as read after the run quiesced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalRoom {
    pub room: String,
    pub org: String,
    /// `None` when the room no longer exists (it was deleted).
    pub snapshot: Option<RoomSnapshot>,
    pub max_participants: u32,
    pub unused_timeout: u32,
    pub empty_timeout: u32,
    pub max_duration: Option<u32>,
    /// The whole event log, from seq 1.
    pub events: Vec<LogEvent>,
}

/// Writes `entries` to `path` as JSON lines.
pub fn write(path: &Path, entries: &[Entry]) -> std::io::Result<()> {
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)?;
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for entry in entries {
        serde_json::to_writer(&mut file, entry)?;
        file.write_all(b"\n")?;
    }
    file.flush()
}

/// Reads a history written by [`write`].
pub fn read(path: &Path) -> Result<Vec<Entry>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut entries = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let entry = serde_json::from_str(&line)
            .map_err(|e| format!("{}:{}: {e}", path.display(), number + 1))?;
        entries.push(entry);
    }
    Ok(entries)
}
