//! The room registry: one actor per node that spawns, supervises and
//! restarts room actors.
//!
//! The registry starts an actor only for a room this node holds a lease on
//! (see [`crate::acquire`]): a room it created, owns, or just claimed.
//!
//! Room actors are linked to the registry. A room actor that exits for a
//! normal reason (its room closed and lingered, or was deleted, handed off
//! or fenced, or the node shuts down) is forgotten. Any other exit (a panic, an error, a kill) is a
//! failure: the registry reloads the room from the store, never from memory,
//! after a backoff that doubles with each recent restart, until the room's
//! restart budget for the window is spent.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use roomd_model::{Limits, Room, RoomError, RoomId, RoomResult};
use roomd_store::{Lease, Store};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::acquire::{Acquired, acquire};
use crate::clock::Clock;
use crate::membership::Membership;
use crate::room_actor::{
    EXIT_CLOSED, EXIT_DELETED, EXIT_FENCED, EXIT_RELEASED, RoomActor, RoomMsg, RoomStart,
};

/// Room actors currently running on this node, readable without a message
/// to the registry. Only the registry writes it.
pub type LiveRooms = Arc<DashMap<RoomId, ActorRef<RoomMsg>>>;

#[derive(Debug, Clone)]
pub struct RestartPolicy {
    /// Backoff before the first restart; it doubles with each restart still
    /// inside the window.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Restarts allowed per room within `window`.
    pub budget: usize,
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            budget: 5,
            window: Duration::from_secs(60),
        }
    }
}

pub enum RegistryMsg {
    /// Starts the actor of a room that this node has `lease` on, or
    /// returns the one already running.
    Spawn {
        room: Box<Room>,
        lease: Lease,
        reply: RpcReplyPort<RoomResult<ActorRef<RoomMsg>>>,
    },
    /// Restarts a failed room actor after its backoff. Without an org, as
    /// after a registry restart, the room's stored org is taken.
    Restart {
        org: Option<String>,
        room_id: RoomId,
    },
}

#[derive(Clone)]
pub struct RoomRegistry {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub linger: Duration,
    pub limits: Arc<Limits>,
    pub restart: RestartPolicy,
    pub live: LiveRooms,
    pub membership: Arc<dyn Membership>,
}

pub struct RegistryState {
    rooms_by_actor: HashMap<ActorId, (String, RoomId)>,
    restarts: HashMap<RoomId, VecDeque<Instant>>,
}

impl Actor for RoomRegistry {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<RegistryMsg>,
        _args: (),
    ) -> Result<RegistryState, ActorProcessingErr> {
        info!(store = self.store.kind(), "room registry started");
        Ok(RegistryState {
            rooms_by_actor: HashMap::new(),
            restarts: HashMap::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RegistryMsg>,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        info!(rooms = state.rooms_by_actor.len(), "room registry stopped");
        self.live.clear();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RegistryMsg>,
        message: RegistryMsg,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RegistryMsg::Spawn { room, lease, reply } => {
                let result = self.spawn_room(&myself, state, *room, lease).await;
                let _ = reply.send(result);
            }
            RegistryMsg::Restart { org, room_id } => {
                match self.restart(&myself, state, org.as_deref(), room_id).await {
                    Ok(()) => {}
                    Err(RoomError::NotOwner { owner, .. }) => {
                        info!(%room_id, owner = owner.as_deref().unwrap_or("none"), "room moved on; not restarting it here");
                    }
                    Err(fault) => error!(%room_id, error = %fault, "room restart failed"),
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<RegistryMsg>,
        event: SupervisionEvent,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let normal = matches!(
                    reason.as_deref(),
                    Some(EXIT_CLOSED | EXIT_DELETED | EXIT_RELEASED | EXIT_FENCED)
                );
                self.room_exited(
                    &myself,
                    state,
                    &cell,
                    normal,
                    reason.as_deref().unwrap_or("none"),
                );
            }
            SupervisionEvent::ActorFailed(cell, failure) => {
                self.room_exited(&myself, state, &cell, false, &failure.to_string());
            }
            SupervisionEvent::ActorStarted(_) | SupervisionEvent::ProcessGroupChanged(_) => {}
        }
        Ok(())
    }
}

impl RoomRegistry {
    /// Starts a failed room's actor again from the store, if this node
    /// still owns the room or may claim it.
    async fn restart(
        &self,
        myself: &ActorRef<RegistryMsg>,
        state: &mut RegistryState,
        org: Option<&str>,
        room_id: RoomId,
    ) -> RoomResult<()> {
        if self.running(room_id).is_some() {
            return Ok(());
        }
        let acquired = acquire(self.store.as_ref(), self.membership.as_ref(), org, room_id).await?;
        if let Acquired::Owned { room, lease } = acquired {
            self.spawn_room(myself, state, room, lease).await?;
        }
        Ok(())
    }

    /// Starts a room's actor, unless one already runs: two requests may
    /// acquire the same room at once.
    async fn spawn_room(
        &self,
        myself: &ActorRef<RegistryMsg>,
        state: &mut RegistryState,
        room: Room,
        lease: Lease,
    ) -> RoomResult<ActorRef<RoomMsg>> {
        let room_id = room.id;
        if let Some(actor) = self.running(room_id) {
            return Ok(actor);
        }
        let org = room.org.clone();
        let actor = RoomActor {
            store: self.store.clone(),
            clock: self.clock.clone(),
            linger: self.linger,
            limits: self.limits.clone(),
        };
        let (actor_ref, _) =
            Actor::spawn_linked(None, actor, RoomStart { room, lease }, myself.get_cell())
                .await
                .map_err(|e| {
                    error!(%room_id, error = %e, "room actor failed to start");
                    RoomError::OwnerUnavailable {
                        room_id: room_id.to_string(),
                        message: "room actor failed to start".into(),
                    }
                })?;
        state
            .rooms_by_actor
            .insert(actor_ref.get_id(), (org, room_id));
        self.live.insert(room_id, actor_ref.clone());
        metrics::gauge!("roomd_room_actors").set(self.live.len() as f64);
        Ok(actor_ref)
    }

    fn running(&self, room_id: RoomId) -> Option<ActorRef<RoomMsg>> {
        running(&self.live, room_id)
    }

    fn room_exited(
        &self,
        myself: &ActorRef<RegistryMsg>,
        state: &mut RegistryState,
        cell: &ActorCell,
        normal: bool,
        reason: &str,
    ) {
        let Some((org, room_id)) = state.rooms_by_actor.remove(&cell.get_id()) else {
            return;
        };
        // A newer actor may already serve the room; only drop this one.
        self.live
            .remove_if(&room_id, |_, actor| actor.get_id() == cell.get_id());
        metrics::gauge!("roomd_room_actors").set(self.live.len() as f64);

        if normal {
            debug!(%room_id, reason, "room actor exited");
            state.restarts.remove(&room_id);
            return;
        }

        let now = Instant::now();
        let recent = state.restarts.entry(room_id).or_default();
        while recent
            .front()
            .is_some_and(|at| now - *at > self.restart.window)
        {
            recent.pop_front();
        }
        metrics::counter!("roomd_room_actor_failures_total").increment(1);
        if recent.len() >= self.restart.budget {
            error!(
                %room_id,
                reason,
                budget = self.restart.budget,
                "room actor failed; restart budget spent, room stays unloaded until its next request"
            );
            return;
        }
        let backoff = self
            .restart
            .backoff
            .saturating_mul(1 << recent.len().min(16))
            .min(self.restart.max_backoff);
        recent.push_back(now);

        warn!(%room_id, reason, backoff_ms = backoff.as_millis() as u64, "room actor failed; restarting from the store");
        myself.send_after(backoff, move || RegistryMsg::Restart {
            org: Some(org),
            room_id,
        });
    }
}

/// Returns the room's actor if it is running and not on its way out.
pub(crate) fn running(live: &LiveRooms, room_id: RoomId) -> Option<ActorRef<RoomMsg>> {
    let actor = live.get(&room_id)?.value().clone();
    let status = actor.get_status();
    (status == ractor::ActorStatus::Running || status == ractor::ActorStatus::Starting)
        .then_some(actor)
}
