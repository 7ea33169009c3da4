//! The Redis store: durable, and shared by every node of a cluster.
//!
//! # Key layout
//!
//! With the key prefix `P` (`roomd` by default), every key of one room
//! shares the hash tag `{<room id>}`:
//!
//! - `P:room:{ID}`: HASH with `doc` (the room as JSON), `org`, `owner` (node
//!   id, empty when none), `epoch`, `version`, `state` (`new`, `open` or
//!   `closed`) and `request` (the create request id, or empty).
//! - `P:events:{ID}`: LIST of the room's events as JSON; `seq` n is at
//!   index n - 1.
//! - `P:room-events:{ID}`: pub/sub channel on which every write publishes
//!   the room's new events, in order.
//!
//! Indexes, which carry no room hash tag:
//!
//! - `P:org:<org>:rooms`: SET of the ids of the org's rooms.
//! - `P:org:<org>:open`: SET of the ids of the org's rooms that are not
//!   closed, counted against the org's `maxOpenRooms`.
//! - `P:org:<org>:request:<request id>`: STRING with the id of the room that
//!   the request created.
//! - `P:definition:<org>`: STRING with the org's room definition as JSON.
//! - `P:node:<node>:rooms`: SET of the ids of the open rooms a node owns.
//! - `P:unowned`: SET of the ids of open rooms that their owner released.
//! - `P:deadlines`: ZSET of room id to the room's next deadline, in
//!   milliseconds since the Unix epoch; closed rooms have none.
//! - `P:nodes`: HASH of node id to the `NodeInfo` JSON the node registered.
//! - `P:node:<node>:alive`: STRING with the node's latest `NodeInfo` JSON,
//!   which expires with the node's heartbeat.
//! - `P:stats:rejected`: counter of writes rejected as FENCED.
//!
//! NOTE: the scripts touch the org and node index keys along with a room's
//! keys, and build some of those names inside the script. That works on a
//! standalone Redis. Redis Cluster would need the index keys in the same
//! slot as the room keys, and this layout does not arrange that.
//!
//! # Scripts
//!
//! Every write is one Lua script (`*.lua` next to this file), so Redis
//! applies it atomically: `create`, `commit`, `delete`, `claim`, `release`,
//! plus `renew` and `forget` of the node directory. `commit`, `delete` and
//! `release` first check that the room exists in the writer's org, then that
//! the writer's lease (owner and epoch) still matches the record, then the
//! expected version. Every check runs before the first write, so a rejected
//! write changes nothing except the rejected-writes counter.
//!
//! # Connections
//!
//! Commands go over one multiplexed [`ConnectionManager`] (RESP3), which
//! reconnects on its own. Subscriptions use one dedicated pub/sub
//! connection, managed by a background task (see [`pubsub`]).

mod errors;
mod keys;
mod pubsub;
mod scripts;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, FromRedisValue, IntoConnectionInfo, ProtocolVersion, RedisResult};
use roomd_model::{Event, Level, Room, RoomDefinition, RoomId, RoomState};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tracing::warn;

use self::errors::{read_error, redact_url, was_not_sent, write_error};
use self::keys::Keys;
use self::pubsub::{PubSubSettings, Subscriptions};
use self::scripts::{Outcome, parse_outcome, unexpected};
use crate::ownership::{Lease, Location, NodeDirectory, NodeId, NodeInfo, NodeStatus};
use crate::{Claimed, Created, RoomPage, RoomQuery, Store, StoreError, StoreResult};

/// Room documents fetched per pipeline by [`Store::find_rooms`].
const FIND_BATCH: usize = 500;
/// Attempts of the connection manager to reconnect before a waiting
/// command fails; kept low so that commands fail fast while Redis is down.
const RECONNECT_RETRIES: usize = 1;
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);

/// Settings of [`RedisStore::connect`].
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://...` for
    /// TLS.
    pub url: String,
    /// Password that replaces the one in `url`.
    pub password: Option<String>,
    /// PEM CA bundle that a `rediss://` server's certificate is checked
    /// against; the system's trusted roots when unset.
    pub ca_certificate: Option<Vec<u8>>,
    /// How long a command may wait for its reply before it fails.
    pub response_timeout: Duration,
    /// How long opening a connection may take before it fails.
    pub connect_timeout: Duration,
    /// Prefix of every key and channel name.
    pub key_prefix: String,
}

impl RedisConfig {
    /// Returns the default settings with `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            ..RedisConfig::default()
        }
    }

    /// Checks that `url` is a Redis URL this build can connect to, without
    /// connecting. The message names the URL without its password.
    pub fn check_url(url: &str) -> Result<(), String> {
        let shown = redact_url(url);
        if !url.starts_with("redis://") && !url.starts_with("rediss://") {
            return Err(format!(
                "{shown:?} is not supported: use redis://[user:password@]host[:port][/db], \
                 or rediss:// for TLS"
            ));
        }
        url.into_connection_info()
            .map(|_| ())
            .map_err(|e| format!("{shown:?} is not a valid Redis URL: {e}"))
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".to_owned(),
            password: None,
            ca_certificate: None,
            response_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            key_prefix: "roomd".to_owned(),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "redacted"))
            .field("ca_certificate", &self.ca_certificate.is_some())
            .field("response_timeout", &self.response_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// A [`Store`] and [`NodeDirectory`] kept in Redis.
pub struct RedisStore {
    connection: ConnectionManager,
    keys: Keys,
    subscriptions: Subscriptions,
}

/// Opens a client for `info`, checking a TLS server's certificate against
/// the configured CA bundle when there is one.
fn open_client(info: redis::ConnectionInfo, config: &RedisConfig) -> RedisResult<Client> {
    match &config.ca_certificate {
        Some(ca) => Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.clone()),
            },
        ),
        None => Client::open(info),
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to Redis and checks that it replies to PING. Fails with
    /// [`StoreError::Unavailable`], naming the URL without its password,
    /// when the URL is invalid or Redis cannot be reached.
    pub async fn connect(config: RedisConfig) -> StoreResult<Self> {
        let shown_url = redact_url(&config.url);
        let unavailable = |error: &dyn fmt::Display| {
            StoreError::Unavailable(format!("Redis at {shown_url}: {error}"))
        };

        let info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| unavailable(&format_args!("invalid URL: {e}")))?;
        let mut settings = info.redis_settings().clone();
        if let Some(password) = &config.password {
            settings = settings.set_password(password);
        }
        // Both connections must authenticate alike. Without a user name,
        // redis-rs 1.8 sends RESP3's `HELLO 3 AUTH default <password>` but
        // RESP2's `AUTH <password>`, and a Redis without a password accepts
        // the first and rejects the second. Naming the user makes both
        // send the two-argument form, which Redis 6 and later accept.
        if settings.password().is_some() && settings.username().is_none() {
            settings = settings.set_username("default");
        }
        // RESP3 lets the connection manager notice a closed connection and
        // reconnect before the next command; the pub/sub connection of the
        // `redis` crate expects RESP2.
        let command_client = open_client(
            info.clone()
                .set_redis_settings(settings.clone().set_protocol(ProtocolVersion::RESP3)),
            &config,
        )
        .map_err(|e| unavailable(&e))?;
        let pubsub_client = open_client(
            info.set_redis_settings(settings.set_protocol(ProtocolVersion::RESP2)),
            &config,
        )
        .map_err(|e| unavailable(&e))?;

        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let mut connection = ConnectionManager::new_with_config(command_client, manager_config)
            .await
            .map_err(|e| unavailable(&format_args!("cannot connect: {e}")))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(|e| unavailable(&format_args!("PING failed: {e}")))?;

        let keys = Keys::new(&config.key_prefix);
        let subscriptions = Subscriptions::start(PubSubSettings {
            client: pubsub_client,
            connection: connection.clone(),
            keys: keys.clone(),
            shown_url,
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
        });
        Ok(RedisStore {
            connection,
            keys,
            subscriptions,
        })
    }

    /// Returns the name of the counter that every commit, delete or release
    /// rejected as FENCED increments.
    pub fn rejected_commits_key(&self) -> String {
        self.keys.rejected()
    }

    /// Runs `request` on the shared connection. A request that failed
    /// because the connection could not be opened was never sent, so it is
    /// run once more: the connection manager only starts reconnecting when
    /// a request fails, and the retry waits for that new attempt.
    async fn run<T, F, Fut>(&self, mut request: F) -> RedisResult<T>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match request(self.connection.clone()).await {
            Err(error) if was_not_sent(&error) => request(self.connection.clone()).await,
            result => result,
        }
    }

    /// Runs a read command.
    async fn query<T: FromRedisValue>(&self, command: &redis::Cmd, action: &str) -> StoreResult<T> {
        self.run(|mut connection| async move { command.query_async(&mut connection).await })
            .await
            .map_err(|e| read_error(e, action))
    }

    /// Runs a read pipeline.
    async fn query_pipeline<T: FromRedisValue>(
        &self,
        pipeline: &redis::Pipeline,
        action: &str,
    ) -> StoreResult<T> {
        self.run(|mut connection| async move { pipeline.query_async(&mut connection).await })
            .await
            .map_err(|e| read_error(e, action))
    }

    /// Runs a write script and parses its outcome.
    async fn invoke(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
        script: &str,
        room_id: Option<RoomId>,
    ) -> StoreResult<Outcome> {
        let reply: Vec<String> = self
            .run(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await
            .map_err(|e| {
                let error = write_error(e, &format!("the {script} script"));
                if let StoreError::Ambiguous(message) = &error {
                    match room_id {
                        Some(room_id) => {
                            warn!(%room_id, script, %message, "Redis write outcome unknown")
                        }
                        None => warn!(script, %message, "Redis write outcome unknown"),
                    }
                }
                error
            })?;
        parse_outcome(reply, script)
    }
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    /// Also returns [`Created::Existing`] when a room with the same id is
    /// already stored, so that a create retried after an ambiguous failure
    /// does not append its events twice.
    async fn create_room(
        &self,
        room: &Room,
        events: &[Event],
        request_id: Option<&str>,
        lease: &Lease,
        max_open_rooms: Option<u32>,
    ) -> StoreResult<Created> {
        let mut invocation = scripts::CREATE.prepare_invoke();
        invocation
            .key(self.keys.room(room.id))
            .key(self.keys.events(room.id))
            .key(self.keys.org_rooms(&room.org))
            .key(self.keys.org_open(&room.org))
            .key(self.keys.node_rooms(lease.node.as_str()))
            .key(self.keys.deadlines());
        if let Some(request_id) = request_id {
            invocation.key(self.keys.request(&room.org, request_id));
        }
        invocation
            .arg(self.keys.prefix())
            .arg(room.id.to_string())
            .arg(&room.org)
            .arg(to_json(room)?)
            .arg(room.state.as_str())
            .arg(room.version)
            .arg(lease.node.as_str())
            .arg(lease.epoch)
            .arg(request_id.unwrap_or(""))
            .arg(
                max_open_rooms
                    .map(|max| max.to_string())
                    .unwrap_or_default(),
            )
            .arg(deadline_arg(room))
            .arg(self.keys.channel(room.id));
        add_events(&mut invocation, events)?;

        match self.invoke(&invocation, "create", Some(room.id)).await? {
            Outcome::New => Ok(Created::New),
            Outcome::Existing(doc) => Ok(Created::Existing(Box::new(from_json(&doc, "room")?))),
            Outcome::OpenLimit => Err(StoreError::OpenRoomLimit {
                org: room.org.clone(),
                max: max_open_rooms.unwrap_or_default(),
            }),
            other => Err(unexpected(other, "create")),
        }
    }

    async fn load_room(&self, org: &str, room_id: RoomId) -> StoreResult<Option<Room>> {
        let mut command = redis::cmd("HGET");
        command.arg(self.keys.room(room_id)).arg("doc");
        let doc: Option<String> = self.query(&command, "loading a room").await?;
        let Some(doc) = doc else {
            return Ok(None);
        };
        let room: Room = from_json(&doc, "room")?;
        Ok((room.org == org).then_some(room))
    }

    async fn locate(&self, room_id: RoomId) -> StoreResult<Option<Location>> {
        let mut command = redis::cmd("HMGET");
        command
            .arg(self.keys.room(room_id))
            .arg(&["org", "owner", "epoch", "state"]);
        let fields: Vec<Option<String>> = self.query(&command, "locating a room").await?;
        let [org, owner, epoch, state] =
            <[Option<String>; 4]>::try_from(fields).map_err(|fields| {
                StoreError::Corrupt(format!("HMGET returned {} fields, not 4", fields.len()))
            })?;
        let Some(org) = org else {
            return Ok(None);
        };
        let epoch = parse_number(epoch.as_deref().unwrap_or_default(), "room epoch")?;
        Ok(Some(Location {
            org,
            owner: owner
                .filter(|owner| !owner.is_empty())
                .map(NodeId::from_stored),
            epoch,
            closed: state.as_deref() == Some(RoomState::Closed.as_str()),
        }))
    }

    async fn commit(
        &self,
        room: &Room,
        events: &[Event],
        expected_version: u64,
        lease: &Lease,
    ) -> StoreResult<()> {
        let mut invocation = scripts::COMMIT.prepare_invoke();
        invocation
            .key(self.keys.room(room.id))
            .key(self.keys.events(room.id))
            .key(self.keys.org_open(&room.org))
            .key(self.keys.node_rooms(lease.node.as_str()))
            .key(self.keys.deadlines())
            .key(self.keys.rejected())
            .arg(room.id.to_string())
            .arg(&room.org)
            .arg(to_json(room)?)
            .arg(room.state.as_str())
            .arg(room.version)
            .arg(expected_version)
            .arg(lease.node.as_str())
            .arg(lease.epoch)
            .arg(deadline_arg(room))
            .arg(self.keys.channel(room.id));
        add_events(&mut invocation, events)?;

        match self.invoke(&invocation, "commit", Some(room.id)).await? {
            Outcome::Ok => Ok(()),
            other => Err(room_outcome_error(other, room, expected_version, "commit")),
        }
    }

    async fn delete_room(
        &self,
        room: &Room,
        events: &[Event],
        expected_version: u64,
        lease: Option<&Lease>,
    ) -> StoreResult<()> {
        let mut invocation = scripts::DELETE.prepare_invoke();
        invocation
            .key(self.keys.room(room.id))
            .key(self.keys.events(room.id))
            .key(self.keys.org_rooms(&room.org))
            .key(self.keys.org_open(&room.org))
            .key(self.keys.deadlines())
            .key(self.keys.unowned())
            .key(self.keys.rejected())
            .arg(self.keys.prefix())
            .arg(room.id.to_string())
            .arg(&room.org)
            .arg(expected_version)
            .arg(lease.map_or("", |lease| lease.node.as_str()))
            .arg(
                lease
                    .map(|lease| lease.epoch.to_string())
                    .unwrap_or_default(),
            )
            .arg(self.keys.channel(room.id));
        add_events(&mut invocation, events)?;

        match self.invoke(&invocation, "delete", Some(room.id)).await? {
            Outcome::Ok => Ok(()),
            other => Err(room_outcome_error(other, room, expected_version, "delete")),
        }
    }

    async fn claim_room(
        &self,
        room_id: RoomId,
        seen: &Location,
        node: &NodeId,
    ) -> StoreResult<Claimed> {
        let mut invocation = scripts::CLAIM.prepare_invoke();
        invocation
            .key(self.keys.room(room_id))
            .key(self.keys.unowned())
            .key(self.keys.node_rooms(node.as_str()))
            .arg(self.keys.prefix())
            .arg(room_id.to_string())
            .arg(&seen.org)
            .arg(seen.owner.as_ref().map_or("", NodeId::as_str))
            .arg(seen.epoch)
            .arg(node.as_str());

        match self.invoke(&invocation, "claim", Some(room_id)).await? {
            Outcome::Won(doc) => {
                let room = from_json(&doc, "room")?;
                let lease = Lease {
                    node: node.clone(),
                    epoch: seen.epoch + 1,
                };
                Ok(Claimed::Won(Box::new(room), lease))
            }
            Outcome::Lost => Ok(Claimed::Lost),
            other => Err(unexpected(other, "claim")),
        }
    }

    async fn release_room(&self, room_id: RoomId, lease: &Lease) -> StoreResult<()> {
        let mut invocation = scripts::RELEASE.prepare_invoke();
        invocation
            .key(self.keys.room(room_id))
            .key(self.keys.node_rooms(lease.node.as_str()))
            .key(self.keys.unowned())
            .key(self.keys.rejected())
            .arg(room_id.to_string())
            .arg(lease.node.as_str())
            .arg(lease.epoch);

        match self.invoke(&invocation, "release", Some(room_id)).await? {
            Outcome::Ok => Ok(()),
            Outcome::Missing => Err(StoreError::RoomMissing(room_id.to_string())),
            Outcome::Fenced => Err(StoreError::Fenced {
                room_id: room_id.to_string(),
            }),
            other => Err(unexpected(other, "release")),
        }
    }

    /// NOTE: this reads every room of the org, in pipelines of 500, and
    /// filters and sorts them here, so its cost grows with the org's size.
    async fn find_rooms(&self, query: RoomQuery<'_>) -> StoreResult<RoomPage> {
        let mut command = redis::cmd("SMEMBERS");
        command.arg(self.keys.org_rooms(query.org));
        let members: Vec<String> = self.query(&command, "listing the rooms of an org").await?;
        let ids = members
            .iter()
            .map(|member| parse_room_id(member))
            .collect::<StoreResult<Vec<_>>>()?;

        let mut matching = Vec::new();
        for batch in ids.chunks(FIND_BATCH) {
            let mut pipeline = redis::pipe();
            for room_id in batch {
                pipeline.hget(self.keys.room(*room_id), "doc");
            }
            let docs: Vec<Option<String>> = self
                .query_pipeline(&pipeline, "loading the rooms of an org")
                .await?;
            // A room deleted since SMEMBERS has no document any more.
            for doc in docs.into_iter().flatten() {
                let room: Room = from_json(&doc, "room")?;
                if room.org == query.org
                    && query.filter.matches(&room)
                    && room.require(query.principal, Level::Read).is_ok()
                {
                    matching.push(room);
                }
            }
        }
        matching.sort_by(|a, b| query.order.compare(a, b));
        Ok(page(matching, query.offset, query.limit))
    }

    async fn read_events(
        &self,
        org: &str,
        room_id: RoomId,
        from_seq: u64,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        let room_key = self.keys.room(room_id);
        let mut pipeline = redis::pipe();
        pipeline.atomic().hget(&room_key, "org");
        let (stored_org, events): (Option<String>, Vec<String>) = if limit == 0 {
            let (stored_org,): (Option<String>,) = self
                .query_pipeline(&pipeline, "reading room events")
                .await?;
            (stored_org, Vec::new())
        } else {
            // Sequence numbers start at 1 and have no gaps, so seq n sits at
            // index n - 1.
            let start = i64::try_from(from_seq.saturating_sub(1)).unwrap_or(i64::MAX);
            let count = i64::try_from(limit).unwrap_or(i64::MAX);
            let end = start.saturating_add(count - 1);
            pipeline.lrange(self.keys.events(room_id), start as isize, end as isize);
            self.query_pipeline(&pipeline, "reading room events")
                .await?
        };
        if stored_org.as_deref() != Some(org) {
            return Err(StoreError::RoomMissing(room_id.to_string()));
        }
        events.iter().map(|json| from_json(json, "event")).collect()
    }

    /// Also sends the room's last stored event once the subscription is in
    /// place. A receiver may therefore get an event twice, or one it has
    /// already read, so receivers must go by `seq`.
    fn subscribe(&self, room_id: RoomId) -> broadcast::Receiver<Event> {
        self.subscriptions.subscribe(room_id)
    }

    async fn put_definition(&self, definition: &RoomDefinition) -> StoreResult<()> {
        let mut command = redis::cmd("SET");
        command
            .arg(self.keys.definition(&definition.org))
            .arg(to_json(definition)?);
        self.run(|mut connection| {
            let command = &command;
            async move { command.query_async::<()>(&mut connection).await }
        })
        .await
        .map_err(|e| write_error(e, "storing a room definition"))
    }

    async fn get_definition(&self, org: &str) -> StoreResult<Option<RoomDefinition>> {
        let mut command = redis::cmd("GET");
        command.arg(self.keys.definition(org));
        let json: Option<String> = self.query(&command, "loading a room definition").await?;
        json.map(|json| from_json(&json, "room definition"))
            .transpose()
    }
}

#[async_trait]
impl NodeDirectory for RedisStore {
    async fn register(&self, info: &NodeInfo, ttl: Duration) -> StoreResult<()> {
        let json = to_json(info)?;
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .hset(self.keys.nodes(), info.id.as_str(), &json)
            .ignore()
            .cmd("SET")
            .arg(self.keys.node_alive(info.id.as_str()))
            .arg(&json)
            .arg("PX")
            .arg(ttl_millis(ttl))
            .ignore();
        self.run(|mut connection| {
            let pipeline = &pipeline;
            async move { pipeline.query_async::<()>(&mut connection).await }
        })
        .await
        .map_err(|e| write_error(e, "registering a node"))
    }

    async fn renew(&self, info: &NodeInfo, ttl: Duration) -> StoreResult<bool> {
        let mut invocation = scripts::RENEW.prepare_invoke();
        invocation
            .key(self.keys.node_alive(info.id.as_str()))
            .key(self.keys.nodes())
            .arg(to_json(info)?)
            .arg(ttl_millis(ttl))
            .arg(info.id.as_str());
        match self.invoke(&invocation, "renew", None).await? {
            Outcome::Ok => Ok(true),
            Outcome::Expired => Ok(false),
            other => Err(unexpected(other, "renew")),
        }
    }

    async fn nodes(&self) -> StoreResult<Vec<NodeStatus>> {
        let mut command = redis::cmd("HGETALL");
        command.arg(self.keys.nodes());
        let registered: std::collections::HashMap<String, String> =
            self.query(&command, "listing nodes").await?;
        let mut ids: Vec<String> = registered.into_keys().collect();
        ids.sort();
        if ids.is_empty() {
            return Ok(Vec::new());
        }

        let mut command = redis::cmd("MGET");
        for id in &ids {
            command.arg(self.keys.node_alive(id));
        }
        let heartbeats: Vec<Option<String>> =
            self.query(&command, "reading node heartbeats").await?;
        ids.into_iter()
            .zip(heartbeats)
            .map(|(id, heartbeat)| match heartbeat {
                Some(json) => Ok(NodeStatus::Live(from_json(&json, "node heartbeat")?)),
                None => Ok(NodeStatus::Dead(NodeId::from_stored(id))),
            })
            .collect()
    }

    async fn expire(&self, node: &NodeId) -> StoreResult<()> {
        let mut command = redis::cmd("DEL");
        command.arg(self.keys.node_alive(node.as_str()));
        self.run(|mut connection| {
            let command = &command;
            async move { command.query_async::<()>(&mut connection).await }
        })
        .await
        .map_err(|e| write_error(e, "expiring a node heartbeat"))
    }

    async fn forget(&self, node: &NodeId) -> StoreResult<bool> {
        let mut invocation = scripts::FORGET.prepare_invoke();
        invocation
            .key(self.keys.node_alive(node.as_str()))
            .key(self.keys.node_rooms(node.as_str()))
            .key(self.keys.nodes())
            .arg(node.as_str());
        match self.invoke(&invocation, "forget", None).await? {
            Outcome::Forgotten => Ok(true),
            Outcome::Kept => Ok(false),
            other => Err(unexpected(other, "forget")),
        }
    }

    async fn owned_rooms(&self, node: Option<&NodeId>, limit: usize) -> StoreResult<Vec<RoomId>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = match node {
            Some(node) => self.keys.node_rooms(node.as_str()),
            None => self.keys.unowned(),
        };
        let mut command = redis::cmd("SRANDMEMBER");
        command.arg(key).arg(limit);
        let members: Vec<String> = self.query(&command, "listing owned rooms").await?;
        members.iter().map(|member| parse_room_id(member)).collect()
    }

    async fn overdue_rooms(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<Vec<RoomId>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut command = redis::cmd("ZRANGEBYSCORE");
        command
            .arg(self.keys.deadlines())
            .arg("-inf")
            .arg(before.timestamp_millis())
            .arg("LIMIT")
            .arg(0)
            .arg(limit);
        let members: Vec<String> = self.query(&command, "listing overdue rooms").await?;
        members.iter().map(|member| parse_room_id(member)).collect()
    }
}

/// Maps the outcome of a `commit` or `delete` script that rejected the
/// write.
fn room_outcome_error(outcome: Outcome, room: &Room, expected: u64, script: &str) -> StoreError {
    match outcome {
        Outcome::Missing => StoreError::RoomMissing(room.id.to_string()),
        Outcome::Fenced => StoreError::Fenced {
            room_id: room.id.to_string(),
        },
        Outcome::Version(actual) => StoreError::VersionMismatch {
            room_id: room.id.to_string(),
            expected,
            actual,
        },
        other => unexpected(other, script),
    }
}

/// Adds each event as JSON to a script's arguments.
fn add_events(invocation: &mut redis::ScriptInvocation<'_>, events: &[Event]) -> StoreResult<()> {
    for event in events {
        invocation.arg(to_json(event)?);
    }
    Ok(())
}

/// Returns the room's next deadline in milliseconds since the Unix epoch,
/// or an empty string when no timer runs.
fn deadline_arg(room: &Room) -> String {
    room.next_deadline()
        .map(|(at, _timer)| at.timestamp_millis().to_string())
        .unwrap_or_default()
}

/// Returns a heartbeat TTL in milliseconds, at least 1, as `SET PX` needs.
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn to_json<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode as JSON: {e}")))
}

fn from_json<T: DeserializeOwned>(json: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("stored {what} is not valid JSON: {e}")))
}

fn parse_room_id(text: &str) -> StoreResult<RoomId> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("stored room id {text:?} is not a UUID")))
}

fn parse_number(text: &str, what: &str) -> StoreResult<u64> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("stored {what} {text:?} is not a number")))
}

/// Returns the rooms from `offset` on, at most `limit` of them, with the
/// offset of the next page when more remain.
fn page(rooms: Vec<Room>, offset: usize, limit: usize) -> RoomPage {
    let total = rooms.len();
    let end = offset.saturating_add(limit).min(total);
    let rooms: Vec<Room> = rooms
        .into_iter()
        .skip(offset)
        .take(end.saturating_sub(offset))
        .collect();
    let next_offset = (end < total).then_some(end);
    RoomPage { rooms, next_offset }
}
