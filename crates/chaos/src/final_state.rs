//! Reads every room's final state and whole event log once the run has
//! quiesced, straight from the nodes (not through the proxies), retrying
//! reads that the recovering cluster cannot serve yet.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::{FindRoomsRequest, GetRoomRequest, Room, WatchRoomRequest};
use tonic::transport::Channel;

use crate::client::{classify, request, snapshot};
use crate::history::{Entry, FinalRoom, LogEvent, Op, Outcome};
use crate::workload::log_event;

const ATTEMPTS: usize = 20;
const RETRY_PAUSE: Duration = Duration::from_millis(500);
const CONCURRENT_READS: usize = 16;

/// Reads the rooms of `orgs`, plus every room the history mentions.
pub async fn read(
    nodes: &[RoomsClient<Channel>],
    orgs: &[String],
    history: &[Entry],
) -> Result<Vec<FinalRoom>, String> {
    let mut rooms: BTreeMap<String, String> = BTreeMap::new();
    for entry in history {
        if let Entry::Request(request) = entry {
            let room = request
                .room
                .clone()
                .or(request.result.as_ref().map(|r| r.id.clone()));
            if let Some(room) = room {
                rooms.insert(room, request.org.clone());
            }
        }
    }
    for org in orgs {
        for room in find_all(&nodes[0], org).await? {
            rooms.insert(room, org.clone());
        }
    }

    let creates = created_configurations(history);
    let reads = futures::stream::iter(rooms.into_iter().enumerate().map(|(index, (room, org))| {
        let node = nodes[index % nodes.len()].clone();
        let configuration = creates.get(&room).cloned();
        async move { read_room(node, &org, &room, configuration).await }
    }))
    .buffer_unordered(CONCURRENT_READS)
    .collect::<Vec<_>>()
    .await;
    reads.into_iter().collect()
}

/// Collects the timers and size each acknowledged create requested, by room.
fn created_configurations(history: &[Entry]) -> BTreeMap<String, (u32, u32, u32, Option<u32>)> {
    let mut creates = BTreeMap::new();
    for entry in history {
        if let Entry::Request(request) = entry
            && let (
                Op::Create {
                    max_participants,
                    unused_timeout,
                    empty_timeout,
                    max_duration,
                    ..
                },
                Some(made),
            ) = (&request.op, &request.result)
        {
            creates.insert(
                made.id.clone(),
                (
                    *max_participants,
                    *unused_timeout,
                    *empty_timeout,
                    *max_duration,
                ),
            );
        }
    }
    creates
}

async fn find_all(rooms: &RoomsClient<Channel>, org: &str) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    let mut page_token = String::new();
    loop {
        let message = FindRoomsRequest {
            filter_json: "{}".into(),
            limit: 1000,
            page_token: page_token.clone(),
            ..FindRoomsRequest::default()
        };
        let page = retry(|| {
            let mut rooms = rooms.clone();
            let message = message.clone();
            async move { rooms.find_rooms(request(org, message)).await }
        })
        .await
        .map_err(|e| format!("cannot list the rooms of org {org}: {e:?}"))?;
        found.extend(page.rooms.into_iter().map(|room| room.id));
        if page.next_page_token.is_empty() {
            return Ok(found);
        }
        page_token = page.next_page_token;
    }
}

async fn read_room(
    rooms: RoomsClient<Channel>,
    org: &str,
    room_id: &str,
    created: Option<(u32, u32, u32, Option<u32>)>,
) -> Result<FinalRoom, String> {
    let got = retry(|| {
        let mut rooms = rooms.clone();
        let room_id = room_id.to_owned();
        async move {
            rooms
                .get_room(request(org, GetRoomRequest { room_id }))
                .await
        }
    })
    .await;
    let room = match got {
        Ok(room) => Some(room),
        Err(Outcome::Fault { reason, .. }) if reason == "notFound.room" => None,
        Err(other) => return Err(format!("cannot read room {room_id}: {other:?}")),
    };
    let events = match &room {
        Some(room) => read_log(&rooms, org, room).await?,
        None => Vec::new(),
    };

    let (max_participants, unused_timeout, empty_timeout, max_duration) = match &room {
        Some(room) => {
            let configuration = room.configuration.unwrap_or_default();
            (
                configuration.max_participants,
                configuration.unused_timeout,
                configuration.empty_timeout,
                configuration.max_duration,
            )
        }
        None => created.unwrap_or_default(),
    };
    Ok(FinalRoom {
        room: room_id.to_owned(),
        org: org.to_owned(),
        snapshot: room.as_ref().map(snapshot),
        max_participants,
        unused_timeout,
        empty_timeout,
        max_duration,
        events,
    })
}

/// Reads the log from seq 1 up to the room's last seq.
async fn read_log(
    rooms: &RoomsClient<Channel>,
    org: &str,
    room: &Room,
) -> Result<Vec<LogEvent>, String> {
    let mut events: Vec<LogEvent> = Vec::new();
    for _ in 0..ATTEMPTS {
        if events.len() as u64 >= room.last_seq {
            return Ok(events);
        }
        let from_seq = events.last().map_or(1, |event| event.seq + 1);
        let mut message = request(
            org,
            WatchRoomRequest {
                room_id: room.id.clone(),
                from_seq,
            },
        );
        message.set_timeout(Duration::from_secs(30));
        let Ok(stream) = rooms.clone().watch_room(message).await else {
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        };
        let mut stream = stream.into_inner();
        while (events.len() as u64) < room.last_seq {
            match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                Ok(Some(Ok(event))) => events.push(log_event(&event)),
                _ => break,
            }
        }
    }
    if events.len() as u64 >= room.last_seq {
        Ok(events)
    } else {
        Err(format!(
            "read {} of the {} events of room {}",
            events.len(),
            room.last_seq,
            room.id
        ))
    }
}

/// Retries a call while roomd is unavailable, unreachable or rate-limiting
/// the reads.
async fn retry<T, F, Fut>(mut call: F) -> Result<T, Outcome>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut last = Outcome::Unknown {
        message: "not tried".into(),
    };
    for _ in 0..ATTEMPTS {
        match call().await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status) => {
                last = classify(&status);
                let transient = match &last {
                    Outcome::Unknown { .. } => true,
                    Outcome::Fault { reason, .. } => {
                        reason.starts_with("unavailable.") || reason == "limit.rate"
                    }
                    Outcome::Ok => false,
                };
                if !transient {
                    return Err(last);
                }
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Err(last)
}
