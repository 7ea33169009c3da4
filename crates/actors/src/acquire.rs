//! Deciding whether this node may run a room, and claiming the room when
//! its owner is gone.
//!
//! This runs in the request's own task, not in the registry, so that the
//! store round trips of many activations (a burst of forwarded requests, a
//! failover) overlap. The registry is asked only to start the actor.

use roomd_model::{Room, RoomError, RoomId, RoomResult};
use roomd_store::{Claimed, Lease, Location, Store};
use tracing::{debug, info};

use crate::membership::Membership;

/// Times a room is located and claimed before giving up, when other nodes
/// keep claiming it first.
const CLAIM_ATTEMPTS: usize = 3;

/// A room this node may serve.
pub(crate) enum Acquired {
    /// This node owns the room under `lease`; its actor may start.
    Owned { room: Room, lease: Lease },
    /// The room is closed and has no owner; serve it from this copy.
    Closed(Room),
}

/// Locates a room and returns it if this node owns it, or claims it if its
/// owner is dead or released it. A room owned by a live node, or, while
/// this node drains, a room without an owner, gives
/// [`RoomError::NotOwner`]. With an `org`, a room of another org is not
/// found; adoption, which has only room ids, passes `None`.
pub(crate) async fn acquire(
    store: &dyn Store,
    membership: &dyn Membership,
    org: Option<&str>,
    room_id: RoomId,
) -> RoomResult<Acquired> {
    if !membership.serving() {
        return Err(RoomError::OwnerUnavailable {
            room_id: room_id.to_string(),
            message: "this node is rejoining the cluster".into(),
        });
    }

    for _ in 0..CLAIM_ATTEMPTS {
        let location = store
            .locate(room_id)
            .await?
            .filter(|location| org.is_none_or(|org| location.org == org))
            .ok_or_else(|| not_found(room_id))?;
        if location.closed {
            return Ok(Acquired::Closed(load(store, &location, room_id).await?));
        }

        let me = membership.node_id();
        match &location.owner {
            Some(owner) if *owner == me => {
                let room = load(store, &location, room_id).await?;
                let lease = Lease {
                    node: me,
                    epoch: location.epoch,
                };
                return Ok(Acquired::Owned { room, lease });
            }
            Some(owner) if membership.is_alive(owner).await => {
                return Err(RoomError::NotOwner {
                    room_id: room_id.to_string(),
                    owner: Some(owner.to_string()),
                });
            }
            _ if membership.draining() => {
                return Err(RoomError::NotOwner {
                    room_id: room_id.to_string(),
                    owner: None,
                });
            }
            _ => {}
        }

        if let Claimed::Won(room, lease) = store.claim_room(room_id, &location, &me).await? {
            let from = location
                .owner
                .as_ref()
                .map_or("none".into(), ToString::to_string);
            info!(%room_id, from, node = %me, epoch = lease.epoch, "room claimed");
            metrics::counter!("roomd_rooms_claimed_total").increment(1);
            return Ok(Acquired::Owned { room: *room, lease });
        }
        debug!(%room_id, "another node claimed the room first; locating it again");
    }
    Err(RoomError::OwnerUnavailable {
        room_id: room_id.to_string(),
        message: "its ownership kept changing".into(),
    })
}

async fn load(store: &dyn Store, location: &Location, room_id: RoomId) -> RoomResult<Room> {
    store
        .load_room(&location.org, room_id)
        .await?
        .ok_or_else(|| not_found(room_id))
}

fn not_found(room_id: RoomId) -> RoomError {
    RoomError::RoomNotFound {
        room_id: room_id.to_string(),
    }
}
