//! The room actor: owns one live room's state and timers.
//!
//! Every request for the room passes through this actor's mailbox, so
//! changes are applied one at a time. A change is committed to the store
//! before the reply goes out, under the node's lease on the room. If the
//! store rejects it as stale, or its outcome is unknown, the actor fails so
//! that the registry reloads the room from the store rather than trusting
//! memory. If the store rejects the lease, another node owns the room now:
//! the actor replies to every request still in its mailbox with
//! [`RoomError::NotOwner`] and stops.

use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};
use roomd_model::{
    Event, Limits, Principal, Room, RoomDefinition, RoomError, RoomResult, RoomState,
};
use roomd_store::{Lease, Store, StoreError};
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::command::Command;

/// Exit reason of a room actor whose room closed and lingered.
pub const EXIT_CLOSED: &str = "closed";
/// Exit reason of a room actor whose room was deleted.
pub const EXIT_DELETED: &str = "deleted";
/// Exit reason of a room actor whose node handed the room off.
pub const EXIT_RELEASED: &str = "released";
/// Exit reason of a room actor whose lease the store rejected, or whose node
/// lost its membership.
pub const EXIT_FENCED: &str = "fenced";

/// How long a timer whose commit failed waits before it tries again.
const TIMER_RETRY: Duration = Duration::from_secs(1);

pub enum RoomMsg {
    Get {
        org: String,
        principal: Principal,
        reply: RpcReplyPort<RoomResult<Room>>,
    },
    Command {
        org: String,
        principal: Principal,
        command: Command,
        reply: RpcReplyPort<RoomResult<Room>>,
    },
    /// A timer armed with `generation` went off.
    Timer { generation: u64 },
    /// The linger after closing is over.
    LingerOver,
    /// Hands the room off: gives up the lease in the store, so that another
    /// node adopts the room, then stops. Replies once the lease is given up.
    Release { reply: RpcReplyPort<RoomResult<()>> },
    /// Stops the actor after the messages queued before this one.
    Stop,
}

/// Arguments of a room actor: the room and the lease it is written under.
pub struct RoomStart {
    /// The room as just loaded from, or written to, the store.
    pub room: Room,
    /// The node's lease on the room; every commit is made under it.
    pub lease: Lease,
}

pub struct RoomActor {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// How long a closed room's actor keeps serving reads before it stops.
    pub linger: Duration,
    pub limits: Arc<Limits>,
}

pub struct RoomActorState {
    room: Room,
    lease: Lease,
    /// Set once the room was handed off or fenced: the actor no longer owns
    /// it, replies [`RoomError::NotOwner`] and is about to stop.
    gone: Option<&'static str>,
    timer: Option<JoinHandle<Result<(), MessagingErr<RoomMsg>>>>,
    /// Bumped whenever the timer is re-armed, so that a stale timer message
    /// already in the mailbox is ignored.
    timer_generation: u64,
}

impl Actor for RoomActor {
    type Msg = RoomMsg;
    type State = RoomActorState;
    type Arguments = RoomStart;

    async fn pre_start(
        &self,
        _myself: ActorRef<RoomMsg>,
        start: RoomStart,
    ) -> Result<RoomActorState, ActorProcessingErr> {
        Ok(RoomActorState {
            room: start.room,
            lease: start.lease,
            gone: None,
            timer: None,
            timer_generation: 0,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<RoomMsg>,
        state: &mut RoomActorState,
    ) -> Result<(), ActorProcessingErr> {
        debug!(
            room_id = %state.room.id,
            state = %state.room.state,
            epoch = state.lease.epoch,
            "room actor started"
        );
        self.after_change(&myself, state);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RoomMsg>,
        state: &mut RoomActorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        debug!(room_id = %state.room.id, "room actor stopped");
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RoomMsg>,
        message: RoomMsg,
        state: &mut RoomActorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(gone) = state.gone {
            match message {
                RoomMsg::Stop => myself.stop(Some(gone.into())),
                other => reject_unowned(&state.room, gone, other),
            }
            return Ok(());
        }
        match message {
            RoomMsg::Get {
                org,
                principal,
                reply,
            } => {
                let result = check_org(&state.room, &org)
                    .and_then(|()| state.room.require(&principal, roomd_model::Level::Read))
                    .map(|_| state.room.clone());
                send_reply(reply, result);
                Ok(())
            }
            RoomMsg::Command {
                org,
                principal,
                command,
                reply,
            } => {
                self.handle_command(&myself, state, &org, &principal, command, reply)
                    .await
            }
            RoomMsg::Timer { generation } => {
                if generation == state.timer_generation {
                    self.fire_timer(&myself, state).await?;
                }
                Ok(())
            }
            RoomMsg::LingerOver => {
                myself.stop(Some(EXIT_CLOSED.into()));
                Ok(())
            }
            RoomMsg::Release { reply } => {
                self.release(&myself, state, reply).await;
                Ok(())
            }
            // Sent only after `gone` is set, and handled above.
            RoomMsg::Stop => Ok(()),
        }
    }
}

impl RoomActor {
    async fn handle_command(
        &self,
        myself: &ActorRef<RoomMsg>,
        state: &mut RoomActorState,
        org: &str,
        principal: &Principal,
        command: Command,
        reply: RpcReplyPort<RoomResult<Room>>,
    ) -> Result<(), ActorProcessingErr> {
        if let Err(fault) = check_org(&state.room, org) {
            send_reply(reply, Err(fault));
            return Ok(());
        }
        let definition = if command.needs_definition() {
            match load_definition(self.store.as_ref(), org).await {
                Ok(definition) => definition,
                Err(fault) => {
                    send_reply(reply, Err(fault));
                    return Ok(());
                }
            }
        } else {
            RoomDefinition::implicit(org)
        };

        let mut next = state.room.clone();
        let events = match command.apply(
            &mut next,
            principal,
            &definition,
            &self.limits,
            self.clock.now(),
        ) {
            Ok(events) => stamp(events, &state.lease),
            Err(fault) => {
                send_reply(reply, Err(fault));
                return Ok(());
            }
        };

        let deleting = matches!(command, Command::Delete);
        if events.is_empty() && !deleting {
            send_reply(reply, Ok(next));
            return Ok(());
        }

        let committed = if deleting {
            self.store
                .delete_room(&next, &events, state.room.version, Some(&state.lease))
                .await
        } else {
            self.store
                .commit(&next, &events, state.room.version, &state.lease)
                .await
        };
        if let Err(error) = committed {
            return self.commit_failed(myself, state, command.name(), error, Some(reply));
        }

        metrics::counter!("roomd_room_changes_total", "command" => command.name()).increment(1);
        info!(
            room_id = %next.id,
            command = command.name(),
            version = next.version,
            events = events.len(),
            "room changed"
        );
        state.room = next;
        send_reply(reply, Ok(state.room.clone()));

        if deleting {
            myself.stop(Some(EXIT_DELETED.into()));
        } else {
            self.after_change(myself, state);
        }
        Ok(())
    }

    async fn fire_timer(
        &self,
        myself: &ActorRef<RoomMsg>,
        state: &mut RoomActorState,
    ) -> Result<(), ActorProcessingErr> {
        let mut next = state.room.clone();
        let timer = next
            .next_deadline()
            .map_or("none", |(_, timer)| timer.as_str());
        let events = stamp(next.fire_due_timer(self.clock.now()), &state.lease);
        if events.is_empty() {
            // Woken early (the clock moved); arm again for the deadline.
            self.after_change(myself, state);
            return Ok(());
        }

        let committed = self
            .store
            .commit(&next, &events, state.room.version, &state.lease)
            .await;
        if let Err(error) = committed {
            if let StoreError::Unavailable(_) = error {
                warn!(room_id = %next.id, error = %error, "timer commit failed; retrying");
                self.arm_in(myself, state, TIMER_RETRY);
                return Ok(());
            }
            return self.commit_failed(myself, state, "timer", error, None);
        }

        metrics::counter!("roomd_room_timers_fired_total", "timer" => timer).increment(1);
        log_timer_events(&events);
        state.room = next;
        self.after_change(myself, state);
        Ok(())
    }

    /// Gives up the lease so that another node adopts the room. Requests
    /// still queued get [`RoomError::NotOwner`] in reply, so that the
    /// node forwards them to the next owner.
    async fn release(
        &self,
        myself: &ActorRef<RoomMsg>,
        state: &mut RoomActorState,
        reply: RpcReplyPort<RoomResult<()>>,
    ) {
        let room_id = state.room.id;
        if state.room.state == RoomState::Closed {
            // A closed room has no owner left to give up; it only lingers.
            let _ = reply.send(Ok(()));
            self.stop_owning(myself, state, EXIT_CLOSED);
            return;
        }
        let released = self.store.release_room(room_id, &state.lease).await;
        match &released {
            Ok(()) => info!(%room_id, epoch = state.lease.epoch, "room handed off"),
            Err(error) => warn!(%room_id, error = %error, "room hand-off failed"),
        }
        let _ = reply.send(released.map_err(RoomError::from));
        self.stop_owning(myself, state, EXIT_RELEASED);
    }

    /// Stops serving the room: later messages get [`RoomError::NotOwner`],
    /// and the actor stops once it has replied to the queued ones.
    fn stop_owning(
        &self,
        myself: &ActorRef<RoomMsg>,
        state: &mut RoomActorState,
        why: &'static str,
    ) {
        state.gone = Some(why);
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        state.timer_generation += 1;
        let _ = myself.send_message(RoomMsg::Stop);
    }

    /// Handles a failed commit. A store that was unreachable applied
    /// nothing, so the caller gets a retryable fault and the room stays as
    /// it was. A rejected lease means another node owns the room: the actor
    /// stops. A stale version or an unknown outcome means memory can no
    /// longer be trusted: the actor fails and the registry reloads it.
    fn commit_failed(
        &self,
        myself: &ActorRef<RoomMsg>,
        state: &mut RoomActorState,
        action: &str,
        error: StoreError,
        reply: Option<RpcReplyPort<RoomResult<Room>>>,
    ) -> Result<(), ActorProcessingErr> {
        let room_id = state.room.id;
        if let StoreError::Fenced { .. } = error {
            warn!(%room_id, action, epoch = state.lease.epoch, "room fenced: another node owns it now");
            metrics::counter!("roomd_room_fenced_total").increment(1);
            if let Some(reply) = reply {
                send_reply(reply, Err(RoomError::from(error)));
            }
            self.stop_owning(myself, state, EXIT_FENCED);
            return Ok(());
        }
        let reload = !matches!(error, StoreError::Unavailable(_));
        warn!(%room_id, action, error = %error, reload, "room commit failed");
        metrics::counter!("roomd_store_commit_failures_total").increment(1);
        if let Some(reply) = reply {
            send_reply(reply, Err(RoomError::from(error.clone())));
        }
        if reload {
            return Err(format!("room {room_id}: {action} commit failed: {error}").into());
        }
        Ok(())
    }

    /// Re-arms the timer after the room changed, and starts the linger once
    /// the room is closed.
    fn after_change(&self, myself: &ActorRef<RoomMsg>, state: &mut RoomActorState) {
        if state.room.state == RoomState::Closed {
            if let Some(timer) = state.timer.take() {
                timer.abort();
            }
            state.timer_generation += 1;
            myself.send_after(self.linger, || RoomMsg::LingerOver);
            return;
        }
        let Some((deadline, _)) = state.room.next_deadline() else {
            return;
        };
        let delay = (deadline - self.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        self.arm_in(myself, state, delay);
    }

    fn arm_in(&self, myself: &ActorRef<RoomMsg>, state: &mut RoomActorState, delay: Duration) {
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        state.timer_generation += 1;
        let generation = state.timer_generation;
        state.timer = Some(myself.send_after(delay, move || RoomMsg::Timer { generation }));
    }
}

/// Marks events with the epoch of the lease they are committed under, so
/// that the log shows which ownership wrote each one.
fn stamp(mut events: Vec<Event>, lease: &Lease) -> Vec<Event> {
    for event in &mut events {
        event.epoch = lease.epoch;
    }
    events
}

/// Replies to a message that reached an actor which no longer owns its room.
fn reject_unowned(room: &Room, why: &str, message: RoomMsg) {
    let not_owner = || RoomError::NotOwner {
        room_id: room.id.to_string(),
        owner: None,
    };
    match message {
        RoomMsg::Get { reply, .. } | RoomMsg::Command { reply, .. } => {
            debug!(room_id = %room.id, why, "request rejected: the room is no longer owned here");
            send_reply(reply, Err(not_owner()));
        }
        RoomMsg::Release { reply } => {
            // Already handed off or fenced: nothing left to release.
            let _ = reply.send(Err(not_owner()));
        }
        RoomMsg::Timer { .. } | RoomMsg::LingerOver | RoomMsg::Stop => {}
    }
}

fn log_timer_events(events: &[Event]) {
    for event in events {
        info!(
            room_id = %event.room_id,
            event = %event.name,
            reason = event.reason.as_deref().unwrap_or(""),
            "room timer fired"
        );
    }
}

/// Rooms are scoped by org: a room of another org does not exist for the
/// caller.
fn check_org(room: &Room, org: &str) -> RoomResult<()> {
    if room.org == org {
        Ok(())
    } else {
        Err(RoomError::RoomNotFound {
            room_id: room.id.to_string(),
        })
    }
}

pub(crate) async fn load_definition(store: &dyn Store, org: &str) -> RoomResult<RoomDefinition> {
    Ok(store
        .get_definition(org)
        .await?
        .unwrap_or_else(|| RoomDefinition::implicit(org)))
}

fn send_reply(reply: RpcReplyPort<RoomResult<Room>>, result: RoomResult<Room>) {
    // The caller may have given up (timeout, cancelled RPC); the change, if
    // any, is committed all the same.
    let _ = reply.send(result);
}
