//! Helpers for cluster tests: retrying calls that fail with UNAVAILABLE,
//! a `Definitions` client for a [`ClusterNode`], and reads of the Redis keys
//! that the cluster shares, by the layout that the Redis store documents
//! (key prefix `roomd`).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use roomd_model::{Event, Room};
use roomd_proto::v1::definitions_client::DefinitionsClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::{ClusterNode, connect};

/// How a call that fails with UNAVAILABLE is sent again: after a backoff
/// that starts at `first_backoff` and doubles up to `max_backoff`, at most
/// `max_attempts` times in all.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub max_attempts: u32,
    /// Also send again a call that failed on the client's own connection
    /// before any reply: the connection closed or was reset under it, as
    /// happens when a node stops. tonic reports those as `Cancelled` or
    /// `Unknown`, not UNAVAILABLE, and, unlike grpc-go or grpc-java, does
    /// not retry them by itself.
    pub retry_transport_errors: bool,
}

impl Default for RetryPolicy {
    /// 50 ms doubling up to 1 s, 10 attempts: 5.55 s of backoff in all.
    fn default() -> Self {
        RetryPolicy {
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            max_attempts: 10,
            retry_transport_errors: true,
        }
    }
}

impl RetryPolicy {
    fn may_retry(&self, status: &Status) -> bool {
        let on_client_connection = std::error::Error::source(status)
            .is_some_and(|source| source.is::<tonic::transport::Error>());
        status.code() == Code::Unavailable || (self.retry_transport_errors && on_client_connection)
    }
}

/// Outcome of [`retry_unavailable`].
#[derive(Debug)]
pub struct Retried<T> {
    /// The reply, or the status of the last attempt.
    pub result: Result<T, Status>,
    /// Attempts after the first one.
    pub retries: u32,
}

/// Runs `call(attempt)` (attempt counted from 1) until it succeeds, fails
/// with a status that `policy` does not retry, or `policy.max_attempts`
/// attempts failed. Both roomd's retryable faults
/// (`unavailable.store`, `unavailable.owner`) and transport errors, such as
/// a refused connection to a stopped node, have that code.
pub async fn retry_unavailable<T, F, Fut>(policy: &RetryPolicy, mut call: F) -> Retried<T>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let mut backoff = policy.first_backoff;
    let mut attempt = 1;
    loop {
        match call(attempt).await {
            Ok(response) => {
                return Retried {
                    result: Ok(response.into_inner()),
                    retries: attempt - 1,
                };
            }
            Err(status) if policy.may_retry(&status) && attempt < policy.max_attempts => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(policy.max_backoff);
                attempt += 1;
            }
            Err(status) => {
                return Retried {
                    result: Err(status),
                    retries: attempt - 1,
                };
            }
        }
    }
}

/// Connects a `Definitions` client to the node's public address.
pub async fn definitions_client(node: &ClusterNode) -> DefinitionsClient<Channel> {
    DefinitionsClient::new(connect(node.address()).await)
}

/// Returns a channel to `address` that connects on first use and again
/// after the connection drops, so that a client can keep it across the
/// node's restarts and get UNAVAILABLE while the node is down.
pub fn lazy_channel(address: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{address}"))
        .expect("a socket address makes a valid URI")
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(15))
        .connect_lazy()
}

/// A room's record in Redis: the HASH `roomd:room:{<room id>}`.
#[derive(Debug, Clone)]
pub struct StoredRoom {
    /// Node id of the owner, empty for a closed or released room.
    pub owner: String,
    pub epoch: u64,
    pub version: u64,
    /// `new`, `open` or `closed`.
    pub state: String,
    /// The `doc` field: the room as its owner last committed it.
    pub room: Room,
}

/// Reads the room's record from Redis, or `None` when there is none.
///
/// # Panics
/// When the command fails or a field does not parse.
pub async fn stored_room(redis: &mut MultiplexedConnection, room_id: &str) -> Option<StoredRoom> {
    let key = format!("roomd:room:{{{room_id}}}");
    let fields: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&key)
        .query_async(redis)
        .await
        .unwrap_or_else(|e| panic!("HGETALL {key} failed: {e}"));
    if fields.is_empty() {
        return None;
    }
    let field = |name: &str| {
        fields
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{key} has no field {name:?}: {fields:?}"))
    };
    let number = |name: &str| {
        field(name)
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("{key} field {name:?} is not a number: {e}"))
    };
    let doc = field("doc");
    Some(StoredRoom {
        owner: field("owner"),
        epoch: number("epoch"),
        version: number("version"),
        state: field("state"),
        room: serde_json::from_str(&doc)
            .unwrap_or_else(|e| panic!("{key} doc is not a room: {e}\n{doc}")),
    })
}

/// Reads one field of the room's record, such as `state` or `owner`, with
/// HGET. No roomd node takes part, so the read claims nothing.
///
/// # Panics
/// When the command fails.
pub async fn stored_room_field(
    redis: &mut MultiplexedConnection,
    room_id: &str,
    field: &str,
) -> Option<String> {
    let key = format!("roomd:room:{{{room_id}}}");
    redis::cmd("HGET")
        .arg(&key)
        .arg(field)
        .query_async(redis)
        .await
        .unwrap_or_else(|e| panic!("HGET {key} {field} failed: {e}"))
}

/// Reads the room's whole event log from Redis (`roomd:events:{<room id>}`).
///
/// # Panics
/// When the command fails or an entry is not an event.
pub async fn stored_events(redis: &mut MultiplexedConnection, room_id: &str) -> Vec<Event> {
    let key = format!("roomd:events:{{{room_id}}}");
    let entries: Vec<String> = redis::cmd("LRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query_async(redis)
        .await
        .unwrap_or_else(|e| panic!("LRANGE {key} failed: {e}"));
    entries
        .iter()
        .map(|json| {
            serde_json::from_str(json).unwrap_or_else(|e| {
                panic!("{key} holds an entry that is not an event: {e}\n{json}")
            })
        })
        .collect()
}

/// Returns the counter of writes that the store rejected because the
/// writer's lease was stale (`roomd:stats:rejected`), 0 before the first.
///
/// # Panics
/// When the command fails.
pub async fn rejected_writes(redis: &mut MultiplexedConnection) -> u64 {
    let count: Option<u64> = redis::cmd("GET")
        .arg("roomd:stats:rejected")
        .query_async(redis)
        .await
        .unwrap_or_else(|e| panic!("GET roomd:stats:rejected failed: {e}"));
    count.unwrap_or(0)
}

/// Returns the ids of the nodes whose heartbeat key
/// (`roomd:node:<id>:alive`) exists, each with the internal address it
/// advertises.
///
/// # Panics
/// When a command fails or a heartbeat is not the JSON a node writes.
pub async fn live_nodes(redis: &mut MultiplexedConnection) -> HashMap<String, String> {
    let registered: HashMap<String, String> = redis::cmd("HGETALL")
        .arg("roomd:nodes")
        .query_async(redis)
        .await
        .unwrap_or_else(|e| panic!("HGETALL roomd:nodes failed: {e}"));
    let mut live = HashMap::new();
    for id in registered.keys() {
        let key = format!("roomd:node:{id}:alive");
        let heartbeat: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(redis)
            .await
            .unwrap_or_else(|e| panic!("GET {key} failed: {e}"));
        let Some(heartbeat) = heartbeat else {
            continue;
        };
        let info: serde_json::Value = serde_json::from_str(&heartbeat)
            .unwrap_or_else(|e| panic!("{key} is not JSON: {e}\n{heartbeat}"));
        let address = info["address"]
            .as_str()
            .unwrap_or_else(|| panic!("{key} has no address: {heartbeat}"))
            .to_owned();
        live.insert(id.clone(), address);
    }
    live
}

/// Returns the id under which the node is live in the directory: the live
/// node that advertises the node's internal address.
///
/// # Panics
/// When no live node, or more than one, advertises that address.
pub async fn live_node_id(redis: &mut MultiplexedConnection, node: &ClusterNode) -> String {
    let address = node.internal_address().to_string();
    let live = live_nodes(redis).await;
    let matching: Vec<&String> = live
        .iter()
        .filter(|(_, advertised)| **advertised == address)
        .map(|(id, _)| id)
        .collect();
    match matching.as_slice() {
        [id] => (*id).clone(),
        _ => panic!("expected one live node at {address}, found {matching:?} in {live:?}"),
    }
}

/// Runs `call` on every item with at most `limit` calls at once, each in
/// its own task, and returns the results in the order of `items`.
///
/// # Panics
/// When a call panics. The first panic is raised again here.
pub async fn map_concurrently<T, R, F, Fut>(
    items: impl IntoIterator<Item = T>,
    limit: usize,
    call: F,
) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    let call = std::sync::Arc::new(call);
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(limit.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut count = 0;
    for (index, item) in items.into_iter().enumerate() {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let call = call.clone();
        tasks.spawn(async move {
            let result = call(item).await;
            drop(permit);
            (index, result)
        });
        count += 1;
    }
    let mut results: Vec<Option<R>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => panic!("a task was cancelled: {error}"),
        }
    }
    results
        .into_iter()
        .map(|result| result.expect("every task returned"))
        .collect()
}
