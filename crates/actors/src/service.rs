//! [`RoomService`]: what the server calls for every room operation.
//!
//! Requests for a live room go straight to its actor, found in the shared
//! live map; on a miss the room is activated here, or the call fails with
//! [`RoomError::NotOwner`] when another node owns it (the server then
//! forwards the request there). Finds, watches and definitions read the
//! store directly, and a closed room without an actor is served from its
//! stored copy.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures::StreamExt;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, MessagingErr};
use roomd_model::filter::SortOrder;
use roomd_model::{
    Event, Filter, Level, Limits, NewRoom, Principal, Room, RoomDefaults, RoomDefinition,
    RoomError, RoomId, RoomResult, SortField,
};
use roomd_store::{Created, Lease, NodeId, RoomQuery, Store};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::acquire::{Acquired, acquire};
use crate::clock::Clock;
use crate::command::Command;
use crate::membership::Membership;
use crate::registry::{self, LiveRooms, RegistryMsg, RestartPolicy, RoomRegistry};
use crate::room_actor::{EXIT_FENCED, RoomMsg, load_definition};
use crate::supervisor::{NodeSupervisor, RegistryHandle};
use crate::watch;

/// Page size of a `FindRooms` request that names none, unless the page
/// size limit is lower.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// How long a request waits for a room actor before it reports the owner
/// unavailable.
const ACTOR_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Rooms handed off at once while the node drains.
const HANDOFF_CONCURRENCY: usize = 64;
/// Passes over the live rooms while the node drains.
const HANDOFF_ROUNDS: usize = 5;
/// Remote owners remembered per node; the cache starts over when full.
const MAX_REMEMBERED_OWNERS: usize = 100_000;

/// Outcome of [`RoomService::activate`].
enum Activation {
    Live(ActorRef<RoomMsg>),
    /// The room is closed and has no actor; serve it from this copy.
    Closed(Box<Room>),
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub defaults: RoomDefaults,
    pub limits: Limits,
    /// How long a closed room's actor keeps serving before it stops.
    pub linger: Duration,
    pub restart: RestartPolicy,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            defaults: RoomDefaults::default(),
            limits: Limits::default(),
            linger: Duration::from_secs(10),
            restart: RestartPolicy::default(),
        }
    }
}

/// The room operations of one node. Cheap to clone.
#[derive(Clone)]
pub struct RoomService {
    supervisor: ActorRef<()>,
    registry: RegistryHandle,
    live: LiveRooms,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    membership: Arc<dyn Membership>,
    /// Owners of rooms that live on other nodes, as last located, so that
    /// requests for them are forwarded without a store read each time.
    remote_owners: Arc<DashMap<RoomId, NodeId>>,
    defaults: Arc<RoomDefaults>,
    limits: Arc<Limits>,
    watch_counts: Arc<watch::WatchCounts>,
    /// Set to `true` when the node stops, which ends every open watch.
    watches_ended: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Outcome of [`RoomService::route`].
enum Routed {
    /// The room's actor handled the message and replied with the room.
    Replied(Room),
    /// The room is closed and has no actor; this is its stored copy.
    Closed(Room),
}

/// One page of [`RoomService::find`].
#[derive(Debug, Clone)]
pub struct FoundRooms {
    pub rooms: Vec<Room>,
    pub next_page_token: Option<String>,
}

impl RoomService {
    /// Starts the node's room registry.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        membership: Arc<dyn Membership>,
        config: ServiceConfig,
    ) -> RoomResult<Self> {
        config.defaults.check()?;
        config.limits.check()?;
        let limits = Arc::new(config.limits);
        let live = LiveRooms::default();
        let supervisor = NodeSupervisor {
            registry: RoomRegistry {
                store: store.clone(),
                clock: clock.clone(),
                linger: config.linger,
                limits: limits.clone(),
                restart: config.restart.clone(),
                live: live.clone(),
                membership: membership.clone(),
            },
            restart: config.restart,
        };
        let registry = RegistryHandle::default();
        let (supervisor, _) = Actor::spawn(None, supervisor, registry.clone())
            .await
            .map_err(|e| RoomError::StoreUnavailable {
                message: format!("room registry failed to start: {e}"),
            })?;
        Ok(RoomService {
            supervisor,
            registry,
            live,
            store,
            clock,
            membership,
            remote_owners: Arc::default(),
            defaults: Arc::new(config.defaults),
            limits,
            watch_counts: Arc::default(),
            watches_ended: Arc::new(tokio::sync::watch::Sender::new(false)),
        })
    }

    /// Ends every open watch stream, as the node does when it stops.
    pub fn end_watches(&self) {
        self.watches_ended.send_replace(true);
    }

    /// Stops the registry and every room actor, waiting for them to finish.
    pub async fn shutdown(&self) {
        self.end_watches();
        info!(rooms = self.live.len(), "stopping room actors");
        if let Err(e) = self
            .supervisor
            .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(10)))
            .await
        {
            warn!(error = %e, "room registry did not stop cleanly");
        }
    }

    /// Completes if the node's room registry kept failing and its
    /// supervisor gave up; the node cannot serve rooms after that.
    pub async fn failed(&self) {
        self.registry.failed().await;
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn membership(&self) -> &Arc<dyn Membership> {
        &self.membership
    }

    /// Tells whether this node runs an actor for the room.
    pub fn runs(&self, room_id: RoomId) -> bool {
        registry::running(&self.live, room_id).is_some()
    }

    /// Returns how many room actors run on this node.
    pub fn live_rooms(&self) -> usize {
        self.live.len()
    }

    /// Validates and stores a new room, then starts its actor, which opens
    /// the room right away unless `openAt` lies ahead. A `request_id` seen
    /// before in the org returns the room made the first time.
    pub async fn create(
        &self,
        org: &str,
        principal: &Principal,
        request: NewRoom,
        request_id: Option<&str>,
    ) -> RoomResult<Room> {
        if let Some(request_id) = request_id {
            roomd_model::validate::identifier("requestId", request_id)?;
        }
        let room_id = RoomId::generate();
        if !self.membership.serving() || self.membership.draining() {
            return Err(owner_unavailable(
                room_id,
                "this node takes no new rooms while it rejoins the cluster or shuts down",
            ));
        }
        let definition = load_definition(self.store.as_ref(), org).await?;
        let (room, mut events) = Room::create(
            room_id,
            org,
            request,
            &definition,
            &self.defaults,
            &self.limits,
            principal,
            self.clock.now(),
        )?;

        let lease = Lease::first(self.membership.node_id());
        for event in &mut events {
            event.epoch = lease.epoch;
        }
        let created = self
            .store
            .create_room(
                &room,
                &events,
                request_id,
                &lease,
                definition.max_open_rooms,
            )
            .await?;
        if let Created::Existing(existing) = created {
            info!(room_id = %existing.id, org, "create retried; returning the room made first");
            return Ok(*existing);
        }
        info!(room_id = %room.id, org, state = %room.state, "room created");
        metrics::counter!("roomd_rooms_created_total").increment(1);

        let spawned = self
            .call_registry(room.id, |reply| RegistryMsg::Spawn {
                room: Box::new(room.clone()),
                lease,
                reply,
            })
            .await;
        if let Err(fault) = spawned {
            // The room is durable; the next request for it activates it.
            warn!(room_id = %room.id, error = %fault, "room actor did not start after create");
        }
        Ok(room)
    }

    pub async fn get(&self, org: &str, principal: &Principal, room_id: RoomId) -> RoomResult<Room> {
        let routed = self
            .route(org, room_id, |reply| RoomMsg::Get {
                org: org.to_owned(),
                principal: principal.clone(),
                reply,
            })
            .await?;
        match routed {
            Routed::Replied(room) => Ok(room),
            Routed::Closed(room) => {
                room.require(principal, Level::Read)?;
                Ok(room)
            }
        }
    }

    /// Applies a change to a room through its actor.
    pub async fn command(
        &self,
        org: &str,
        principal: &Principal,
        room_id: RoomId,
        command: Command,
    ) -> RoomResult<Room> {
        let routed = self
            .route(org, room_id, |reply| RoomMsg::Command {
                org: org.to_owned(),
                principal: principal.clone(),
                command: command.clone(),
                reply,
            })
            .await?;
        match routed {
            Routed::Replied(room) => Ok(room),
            Routed::Closed(room) => self.command_on_closed(org, principal, room, &command).await,
        }
    }

    /// Finds the org's rooms that match a filter and that the principal may
    /// read.
    pub async fn find(
        &self,
        org: &str,
        principal: &Principal,
        filter: &str,
        sort: &[SortField],
        limit: u32,
        page_token: &str,
    ) -> RoomResult<FoundRooms> {
        let definition = load_definition(self.store.as_ref(), org).await?;
        let filter = Filter::parse(filter, &definition, &self.limits)?;
        let order = SortOrder::new(sort, &definition)?;
        let max_page_size = self.limits.max_page_size;
        let limit = match limit {
            0 => DEFAULT_PAGE_SIZE.min(max_page_size),
            n if n > max_page_size => {
                return Err(RoomError::validation(
                    "limit",
                    format!("{n} is above the page size limit of {max_page_size}"),
                ));
            }
            n => n,
        };
        let offset = parse_page_token(page_token)?;

        let page = self
            .store
            .find_rooms(RoomQuery {
                org,
                principal,
                filter: &filter,
                order: &order,
                offset,
                limit: limit as usize,
            })
            .await?;
        Ok(FoundRooms {
            rooms: page.rooms,
            next_page_token: page.next_offset.map(|offset| offset.to_string()),
        })
    }

    /// Replays a room's events from `from_seq`, then follows them live. The
    /// channel closes after `room.closed`, or carries a fault and closes.
    /// `watcher` names the caller for the limit on its open watches.
    pub async fn watch(
        &self,
        org: &str,
        principal: &Principal,
        watcher: &str,
        room_id: RoomId,
        from_seq: u64,
    ) -> RoomResult<mpsc::Receiver<RoomResult<Event>>> {
        // The stored copy decides access, wherever the room's owner runs.
        let room =
            self.store
                .load_room(org, room_id)
                .await?
                .ok_or_else(|| RoomError::RoomNotFound {
                    room_id: room_id.to_string(),
                })?;
        room.require(principal, Level::Read)?;
        let permit = self.watch_counts.acquire(room_id, watcher, &self.limits)?;
        Ok(watch::follow(
            self.store.clone(),
            org.to_owned(),
            room_id,
            from_seq,
            self.watches_ended.subscribe(),
            permit,
        ))
    }

    /// Stores the org's room definition. Only the calling service itself,
    /// acting for no account, may change it.
    pub async fn put_definition(
        &self,
        principal: &Principal,
        definition: RoomDefinition,
    ) -> RoomResult<RoomDefinition> {
        if *principal != Principal::Service {
            return Err(RoomError::DefinitionAccessDenied {
                org: definition.org.clone(),
            });
        }
        self.store.put_definition(&definition).await?;
        info!(org = %definition.org, properties = definition.properties.len(), "room definition stored");
        Ok(definition)
    }

    pub async fn get_definition(&self, org: &str) -> RoomResult<RoomDefinition> {
        self.store
            .get_definition(org)
            .await?
            .ok_or_else(|| RoomError::DefinitionNotFound {
                org: org.to_owned(),
            })
    }

    /// Kills a room's actor as a crash would; the registry restarts it from
    /// the store. Returns whether an actor was running.
    pub fn kill_room(&self, room_id: RoomId) -> bool {
        let Some(actor) = registry::running(&self.live, room_id) else {
            return false;
        };
        warn!(%room_id, "killing room actor on request");
        actor.kill();
        true
    }

    /// Kills up to `count` room actors picked at random, as crashes would,
    /// and returns their rooms.
    pub fn kill_random_rooms(&self, count: usize) -> Vec<RoomId> {
        let running: Vec<RoomId> = self.live.iter().map(|entry| *entry.key()).collect();
        let picked =
            rand::seq::IndexedRandom::choose_multiple(running.as_slice(), &mut rand::rng(), count);
        picked
            .copied()
            .filter(|&room_id| self.kill_room(room_id))
            .collect()
    }

    /// Kills the node's room registry, as a crash would. Its supervisor
    /// kills the room actors it ran, starts a new registry and restarts those
    /// rooms from the store. Returns how many room actors ran.
    pub fn kill_registry(&self) -> usize {
        let rooms = self.live.len();
        if let Some(registry) = self.registry.get() {
            warn!(rooms, "killing the room registry on request");
            registry.kill();
        }
        rooms
    }

    /// Claims a room whose owner is dead or released it, and starts its
    /// actor, so that its timers run without waiting for a request. Returns
    /// whether this node now runs the room; `false` when another node took
    /// it or it closed.
    pub async fn adopt(&self, room_id: RoomId) -> RoomResult<bool> {
        match self.activate(None, room_id).await {
            Ok(Activation::Live(_)) => Ok(true),
            Ok(Activation::Closed(_))
            | Err(RoomError::NotOwner { .. } | RoomError::RoomNotFound { .. }) => Ok(false),
            Err(fault) => Err(fault),
        }
    }

    /// Hands every room of this node off: each actor replies to what is
    /// queued for it, gives up its lease and stops. Returns how many rooms were
    /// handed off.
    pub async fn hand_off_rooms(&self) -> usize {
        // A create or activation that began before the drain may start an
        // actor after a round took its snapshot, so go round until none is
        // left.
        let mut handed_off = 0;
        for _ in 0..HANDOFF_ROUNDS {
            let actors: Vec<ActorRef<RoomMsg>> = self
                .live
                .iter()
                .map(|entry| entry.value().clone())
                .collect();
            if actors.is_empty() {
                break;
            }
            handed_off += hand_off(actors).await;
        }
        handed_off
    }

    /// Stops every room actor at once, without touching the store: the node
    /// lost its membership, and other nodes may already own its rooms.
    pub fn fence_rooms(&self) -> usize {
        let mut fenced = 0;
        for entry in self.live.iter() {
            entry.value().stop(Some(EXIT_FENCED.into()));
            fenced += 1;
        }
        fenced
    }

    /// Sends a message to the room's actor and returns its reply. A room
    /// without an actor is activated first; a closed room without one comes
    /// back as [`Routed::Closed`] for the caller to serve from the store.
    async fn route<F>(&self, org: &str, room_id: RoomId, message: F) -> RoomResult<Routed>
    where
        F: Fn(ractor::RpcReplyPort<RoomResult<Room>>) -> RoomMsg,
    {
        if !self.membership.serving() {
            return Err(owner_unavailable(
                room_id,
                "this node is rejoining the cluster",
            ));
        }
        let mut actor = match self.live.get(&room_id).map(|entry| entry.value().clone()) {
            Some(actor) => actor,
            None => match self.activate(Some(org), room_id).await? {
                Activation::Live(actor) => actor,
                Activation::Closed(room) => return Ok(Routed::Closed(*room)),
            },
        };

        // An actor that stopped (handed off, fenced, lingered) before it
        // took the message gives it back unhandled, and one that stopped
        // with the message still queued drops it unanswered; either way it
        // is safe to send the request again through a fresh activation.
        for attempt in 0..2 {
            let (sender, receiver) = ractor::concurrency::oneshot();
            match actor.send_message(message(sender.into())) {
                Ok(()) => match await_reply(receiver).await {
                    Err(Unanswered::Dropped) if attempt == 0 => {
                        debug!(%room_id, "room actor stopped with the request queued; sending it again");
                    }
                    other => {
                        return other
                            .map(Routed::Replied)
                            .map_err(|e| e.into_fault(room_id));
                    }
                },
                Err(MessagingErr::SendErr(_)) => {}
                Err(other) => return Err(owner_unavailable(room_id, &other.to_string())),
            }
            actor = match self.activate(Some(org), room_id).await? {
                Activation::Live(actor) => actor,
                Activation::Closed(room) => return Ok(Routed::Closed(*room)),
            };
        }
        Err(owner_unavailable(room_id, "the room actor kept stopping"))
    }

    /// Forgets where a room was last seen, after a request forwarded there
    /// found the room gone.
    pub fn forget_owner(&self, room_id: RoomId) {
        self.remote_owners.remove(&room_id);
    }

    /// Finds or starts the room's actor, if this node owns the room or may
    /// claim it; otherwise fails with [`RoomError::NotOwner`].
    async fn activate(&self, org: Option<&str>, room_id: RoomId) -> RoomResult<Activation> {
        if let Some(actor) = registry::running(&self.live, room_id) {
            return Ok(Activation::Live(actor));
        }
        if let Some(owner) = self.remembered_owner(room_id).await {
            return Err(RoomError::NotOwner {
                room_id: room_id.to_string(),
                owner: Some(owner.to_string()),
            });
        }

        let acquired = acquire(self.store.as_ref(), self.membership.as_ref(), org, room_id).await;
        let (room, lease) = match acquired {
            Ok(Acquired::Owned { room, lease }) => (room, lease),
            Ok(Acquired::Closed(room)) => return Ok(Activation::Closed(Box::new(room))),
            Err(RoomError::NotOwner {
                room_id: id,
                owner: Some(owner),
            }) => {
                self.remember_owner(room_id, NodeId::from_stored(owner.clone()));
                return Err(RoomError::NotOwner {
                    room_id: id,
                    owner: Some(owner),
                });
            }
            Err(fault) => return Err(fault),
        };

        self.call_registry(room_id, |reply| RegistryMsg::Spawn {
            room: Box::new(room),
            lease,
            reply,
        })
        .await
        .map(Activation::Live)
    }

    /// Returns the room's remote owner as last located, if that node is
    /// still alive.
    async fn remembered_owner(&self, room_id: RoomId) -> Option<NodeId> {
        let owner = self.remote_owners.get(&room_id)?.value().clone();
        if self.membership.is_alive(&owner).await {
            return Some(owner);
        }
        self.remote_owners.remove(&room_id);
        None
    }

    fn remember_owner(&self, room_id: RoomId, owner: NodeId) {
        if self.remote_owners.len() >= MAX_REMEMBERED_OWNERS {
            self.remote_owners.clear();
        }
        self.remote_owners.insert(room_id, owner);
    }

    /// Applies a command to a closed room that has no actor. Only a delete
    /// changes anything; every other command returns its fault.
    async fn command_on_closed(
        &self,
        org: &str,
        principal: &Principal,
        mut room: Room,
        command: &Command,
    ) -> RoomResult<Room> {
        let definition = load_definition(self.store.as_ref(), org).await?;
        let version = room.version;
        let events = command.apply(
            &mut room,
            principal,
            &definition,
            &self.limits,
            self.clock.now(),
        )?;
        if matches!(command, Command::Delete) {
            self.store
                .delete_room(&room, &events, version, None)
                .await?;
            info!(room_id = %room.id, org, "closed room deleted");
        }
        Ok(room)
    }
}

/// Asks each actor to hand its room off, and counts those that did.
async fn hand_off(actors: Vec<ActorRef<RoomMsg>>) -> usize {
    futures::stream::iter(actors)
        .map(|actor| async move {
            let released = actor
                .call(|reply| RoomMsg::Release { reply }, Some(ACTOR_CALL_TIMEOUT))
                .await;
            matches!(released, Ok(CallResult::Success(Ok(()))))
        })
        .buffer_unordered(HANDOFF_CONCURRENCY)
        .filter(|released| std::future::ready(*released))
        .count()
        .await
}

impl RoomService {
    async fn call_registry<T, F>(&self, room_id: RoomId, message: F) -> RoomResult<T>
    where
        T: Send + 'static,
        F: FnOnce(ractor::RpcReplyPort<RoomResult<T>>) -> RegistryMsg,
    {
        let Some(registry) = self.registry.get() else {
            return Err(owner_unavailable(
                room_id,
                "the room registry is restarting",
            ));
        };
        flatten_call(
            room_id,
            registry.call(message, Some(ACTOR_CALL_TIMEOUT)).await,
        )
    }
}

/// Reason a room actor gave no reply.
enum Unanswered {
    /// The reply came back as a fault.
    Fault(RoomError),
    /// The actor stopped before it replied.
    Dropped,
    TimedOut,
}

impl Unanswered {
    fn into_fault(self, room_id: RoomId) -> RoomError {
        match self {
            Unanswered::Fault(fault) => fault,
            Unanswered::Dropped => {
                owner_unavailable(room_id, "the room actor stopped before it replied")
            }
            Unanswered::TimedOut => {
                owner_unavailable(room_id, "the room actor did not reply in time")
            }
        }
    }
}

async fn await_reply(
    receiver: ractor::concurrency::OneshotReceiver<RoomResult<Room>>,
) -> Result<Room, Unanswered> {
    match tokio::time::timeout(ACTOR_CALL_TIMEOUT, receiver).await {
        Ok(Ok(result)) => result.map_err(Unanswered::Fault),
        Ok(Err(_)) => Err(Unanswered::Dropped),
        Err(_) => Err(Unanswered::TimedOut),
    }
}

fn flatten_call<T, M>(
    room_id: RoomId,
    result: Result<CallResult<RoomResult<T>>, MessagingErr<M>>,
) -> RoomResult<T> {
    match result {
        Ok(CallResult::Success(result)) => result,
        Ok(CallResult::Timeout) => Err(owner_unavailable(
            room_id,
            "the room registry did not reply in time",
        )),
        Ok(CallResult::SenderError) | Err(_) => Err(owner_unavailable(
            room_id,
            "the room registry is not running",
        )),
    }
}

fn owner_unavailable(room_id: RoomId, message: &str) -> RoomError {
    RoomError::OwnerUnavailable {
        room_id: room_id.to_string(),
        message: message.to_owned(),
    }
}

fn parse_page_token(token: &str) -> RoomResult<usize> {
    if token.is_empty() {
        return Ok(0);
    }
    token.parse().map_err(|_| {
        RoomError::validation("pageToken", "is not a page token returned by FindRooms")
    })
}
