//! The in-memory store: one node, nothing survives a restart.
//!
//! It keeps the same ownership records as the Redis store, so a lease that
//! went stale is refused here too, and its node directory serves the one
//! node that uses it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use roomd_model::{Event, Level, Room, RoomDefinition, RoomId, RoomState};
use tokio::sync::broadcast;

use crate::ownership::{Lease, Location, NodeDirectory, NodeId, NodeInfo, NodeStatus};
use crate::{Claimed, Created, RoomPage, RoomQuery, Store, StoreError, StoreResult};

/// Events a live subscriber may fall behind by before it receives `Lagged`.
const SUBSCRIBER_BUFFER: usize = 256;
/// Number of per-room channels below which unused ones are not pruned.
const MIN_PRUNE_SUBSCRIBERS: usize = 1024;

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<RoomId, StoredRoom>,
    rooms_by_org: HashMap<String, BTreeSet<RoomId>>,
    request_ids: HashMap<(String, String), RoomId>,
    definitions: HashMap<String, RoomDefinition>,
    /// Nodes registered with this store. Their heartbeats never expire:
    /// this store has no clock, and only `expire` removes a node.
    nodes: HashMap<NodeId, NodeInfo>,
    subscribers: HashMap<RoomId, broadcast::Sender<Event>>,
    /// Size of `subscribers` at which channels without receivers are
    /// dropped; it doubles with what remains so pruning stays amortized O(1).
    prune_subscribers_at: usize,
}

struct StoredRoom {
    room: Room,
    events: Vec<Event>,
    request_id: Option<String>,
    /// `None` once closed, or after the owner released the room.
    owner: Option<NodeId>,
    epoch: u64,
}

impl StoredRoom {
    fn held_by(&self, lease: &Lease) -> bool {
        self.owner.as_ref() == Some(&lease.node) && self.epoch == lease.epoch
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns how many rooms are stored, across all orgs.
    pub fn room_count(&self) -> usize {
        self.lock().rooms.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every method checks its input before it mutates the maps, so a
        // panic while the lock is held leaves them consistent and the guard
        // can be recovered.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// Returns the stored room if the writer may change it: held under
    /// `lease` (or, without one, closed and unowned) and at
    /// `expected_version`.
    fn stored_at(
        &mut self,
        room: &Room,
        expected_version: u64,
        lease: Option<&Lease>,
    ) -> StoreResult<&mut StoredRoom> {
        let stored = self
            .rooms
            .get_mut(&room.id)
            .filter(|stored| stored.room.org == room.org)
            .ok_or_else(|| StoreError::RoomMissing(room.id.to_string()))?;
        let may_write = match lease {
            Some(lease) => stored.held_by(lease),
            None => stored.owner.is_none() && stored.room.state == RoomState::Closed,
        };
        if !may_write {
            return Err(StoreError::Fenced {
                room_id: room.id.to_string(),
            });
        }
        if stored.room.version != expected_version {
            return Err(StoreError::VersionMismatch {
                room_id: room.id.to_string(),
                expected: expected_version,
                actual: stored.room.version,
            });
        }
        Ok(stored)
    }

    /// Counts the org's rooms that are not closed.
    fn open_rooms(&self, org: &str) -> usize {
        self.rooms_by_org.get(org).map_or(0, |ids| {
            ids.iter()
                .filter(|id| self.rooms[*id].room.state != RoomState::Closed)
                .count()
        })
    }

    fn publish(&mut self, room_id: RoomId, events: &[Event]) {
        if let Some(sender) = self.subscribers.get(&room_id) {
            for event in events {
                // No receiver left is fine: the sender is dropped below.
                let _ = sender.send(event.clone());
            }
            // A closed room's log ends, so its channel can go once the last
            // events are sent; receivers still get what is buffered.
            let ended = events.iter().any(Event::is_terminal);
            if ended || sender.receiver_count() == 0 {
                self.subscribers.remove(&room_id);
            }
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn create_room(
        &self,
        room: &Room,
        events: &[Event],
        request_id: Option<&str>,
        lease: &Lease,
        max_open_rooms: Option<u32>,
    ) -> StoreResult<Created> {
        let mut inner = self.lock();
        if let Some(request_id) = request_id {
            let key = (room.org.clone(), request_id.to_owned());
            if let Some(existing) = inner.request_ids.get(&key) {
                let stored = &inner.rooms[existing];
                return Ok(Created::Existing(Box::new(stored.room.clone())));
            }
        }
        if let Some(max) = max_open_rooms
            && inner.open_rooms(&room.org) >= max as usize
        {
            return Err(StoreError::OpenRoomLimit {
                org: room.org.clone(),
                max,
            });
        }
        if let Some(request_id) = request_id {
            inner
                .request_ids
                .insert((room.org.clone(), request_id.to_owned()), room.id);
        }
        inner
            .rooms_by_org
            .entry(room.org.clone())
            .or_default()
            .insert(room.id);
        inner.rooms.insert(
            room.id,
            StoredRoom {
                room: room.clone(),
                events: events.to_vec(),
                request_id: request_id.map(str::to_owned),
                owner: Some(lease.node.clone()),
                epoch: lease.epoch,
            },
        );
        inner.publish(room.id, events);
        Ok(Created::New)
    }

    async fn load_room(&self, org: &str, room_id: RoomId) -> StoreResult<Option<Room>> {
        let inner = self.lock();
        Ok(inner
            .rooms
            .get(&room_id)
            .filter(|stored| stored.room.org == org)
            .map(|stored| stored.room.clone()))
    }

    async fn locate(&self, room_id: RoomId) -> StoreResult<Option<Location>> {
        let inner = self.lock();
        Ok(inner.rooms.get(&room_id).map(|stored| Location {
            org: stored.room.org.clone(),
            owner: stored.owner.clone(),
            epoch: stored.epoch,
            closed: stored.room.state == RoomState::Closed,
        }))
    }

    async fn commit(
        &self,
        room: &Room,
        events: &[Event],
        expected_version: u64,
        lease: &Lease,
    ) -> StoreResult<()> {
        let mut inner = self.lock();
        let stored = inner.stored_at(room, expected_version, Some(lease))?;
        if room.state == RoomState::Closed {
            stored.owner = None;
        }
        stored.room = room.clone();
        stored.events.extend_from_slice(events);
        inner.publish(room.id, events);
        Ok(())
    }

    async fn delete_room(
        &self,
        room: &Room,
        events: &[Event],
        expected_version: u64,
        lease: Option<&Lease>,
    ) -> StoreResult<()> {
        let mut inner = self.lock();
        inner.stored_at(room, expected_version, lease)?;
        let stored = inner.rooms.remove(&room.id).expect("checked above");
        if let Some(ids) = inner.rooms_by_org.get_mut(&room.org) {
            ids.remove(&room.id);
        }
        if let Some(request_id) = stored.request_id {
            inner.request_ids.remove(&(room.org.clone(), request_id));
        }
        inner.publish(room.id, events);
        inner.subscribers.remove(&room.id);
        Ok(())
    }

    async fn claim_room(
        &self,
        room_id: RoomId,
        seen: &Location,
        node: &NodeId,
    ) -> StoreResult<Claimed> {
        let mut inner = self.lock();
        let Some(stored) = inner.rooms.get_mut(&room_id) else {
            return Ok(Claimed::Lost);
        };
        let unchanged =
            stored.room.org == seen.org && stored.owner == seen.owner && stored.epoch == seen.epoch;
        if !unchanged || stored.room.state == RoomState::Closed {
            return Ok(Claimed::Lost);
        }
        stored.owner = Some(node.clone());
        stored.epoch += 1;
        let lease = Lease {
            node: node.clone(),
            epoch: stored.epoch,
        };
        Ok(Claimed::Won(Box::new(stored.room.clone()), lease))
    }

    async fn release_room(&self, room_id: RoomId, lease: &Lease) -> StoreResult<()> {
        let mut inner = self.lock();
        match inner.rooms.get_mut(&room_id) {
            Some(stored) if stored.held_by(lease) => {
                stored.owner = None;
                Ok(())
            }
            Some(_) => Err(StoreError::Fenced {
                room_id: room_id.to_string(),
            }),
            None => Err(StoreError::RoomMissing(room_id.to_string())),
        }
    }

    async fn find_rooms(&self, query: RoomQuery<'_>) -> StoreResult<RoomPage> {
        // NOTE: this scans and sorts every room of the org while the lock is
        // held, so a find over a large org delays commits for that long.
        let inner = self.lock();
        let Some(ids) = inner.rooms_by_org.get(query.org) else {
            return Ok(RoomPage {
                rooms: Vec::new(),
                next_offset: None,
            });
        };
        let mut matching: Vec<&Room> = ids
            .iter()
            .map(|id| &inner.rooms[id].room)
            .filter(|room| query.filter.matches(room))
            .filter(|room| room.require(query.principal, Level::Read).is_ok())
            .collect();
        matching.sort_by(|a, b| query.order.compare(a, b));

        let end = query.offset.saturating_add(query.limit).min(matching.len());
        let rooms = matching
            .get(query.offset..end)
            .unwrap_or_default()
            .iter()
            .map(|room| (*room).clone())
            .collect();
        let next_offset = (end < matching.len()).then_some(end);
        Ok(RoomPage { rooms, next_offset })
    }

    async fn read_events(
        &self,
        org: &str,
        room_id: RoomId,
        from_seq: u64,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        let inner = self.lock();
        let Some(stored) = inner.rooms.get(&room_id).filter(|s| s.room.org == org) else {
            return Err(StoreError::RoomMissing(room_id.to_string()));
        };
        // Sequence numbers start at 1 and have no gaps, so seq n sits at
        // index n - 1.
        let start = from_seq.saturating_sub(1) as usize;
        Ok(stored
            .events
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect())
    }

    fn subscribe(&self, room_id: RoomId) -> broadcast::Receiver<Event> {
        let mut inner = self.lock();
        if inner.subscribers.len() >= inner.prune_subscribers_at.max(MIN_PRUNE_SUBSCRIBERS) {
            inner
                .subscribers
                .retain(|_, sender| sender.receiver_count() > 0);
            inner.prune_subscribers_at = inner.subscribers.len() * 2;
        }
        inner
            .subscribers
            .entry(room_id)
            .or_insert_with(|| broadcast::channel(SUBSCRIBER_BUFFER).0)
            .subscribe()
    }

    async fn put_definition(&self, definition: &RoomDefinition) -> StoreResult<()> {
        let mut inner = self.lock();
        inner
            .definitions
            .insert(definition.org.clone(), definition.clone());
        Ok(())
    }

    async fn get_definition(&self, org: &str) -> StoreResult<Option<RoomDefinition>> {
        Ok(self.lock().definitions.get(org).cloned())
    }
}

/// Nodes of a memory store never expire: the store lives and dies with the
/// one process that uses it.
#[async_trait]
impl NodeDirectory for MemoryStore {
    async fn register(&self, info: &NodeInfo, _ttl: Duration) -> StoreResult<()> {
        self.lock().nodes.insert(info.id.clone(), info.clone());
        Ok(())
    }

    async fn renew(&self, info: &NodeInfo, _ttl: Duration) -> StoreResult<bool> {
        let mut inner = self.lock();
        match inner.nodes.get_mut(&info.id) {
            Some(stored) => {
                *stored = info.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn nodes(&self) -> StoreResult<Vec<NodeStatus>> {
        Ok(self
            .lock()
            .nodes
            .values()
            .cloned()
            .map(NodeStatus::Live)
            .collect())
    }

    async fn expire(&self, node: &NodeId) -> StoreResult<()> {
        self.lock().nodes.remove(node);
        Ok(())
    }

    async fn forget(&self, node: &NodeId) -> StoreResult<bool> {
        let inner = self.lock();
        let owns_rooms = inner
            .rooms
            .values()
            .any(|stored| stored.owner.as_ref() == Some(node));
        Ok(!inner.nodes.contains_key(node) && !owns_rooms)
    }

    async fn overdue_rooms(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<Vec<RoomId>> {
        let inner = self.lock();
        Ok(inner
            .rooms
            .values()
            .filter(|stored| stored.room.state != RoomState::Closed)
            .filter(|stored| {
                stored
                    .room
                    .next_deadline()
                    .is_some_and(|(deadline, _)| deadline < before)
            })
            .map(|stored| stored.room.id)
            .take(limit)
            .collect())
    }

    async fn owned_rooms(&self, node: Option<&NodeId>, limit: usize) -> StoreResult<Vec<RoomId>> {
        let inner = self.lock();
        Ok(inner
            .rooms
            .values()
            .filter(|stored| stored.room.state != RoomState::Closed)
            .filter(|stored| stored.owner.as_ref() == node)
            .map(|stored| stored.room.id)
            .take(limit)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use roomd_model::filter::SortOrder;
    use roomd_model::{Filter, NewRoom, Principal, RoomDefaults};

    use super::*;

    fn lease() -> Lease {
        Lease::first(NodeId::from_stored("node-a"))
    }

    fn new_room(org: &str) -> (Room, Vec<Event>) {
        let request = NewRoom {
            label: "Visit".into(),
            ..NewRoom::default()
        };
        Room::create(
            RoomId::generate(),
            org,
            request,
            &RoomDefinition::implicit(org),
            &RoomDefaults::default(),
            &roomd_model::Limits::default(),
            &Principal::Service,
            Utc::now(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn create_is_idempotent_per_request_id() {
        let store = MemoryStore::new();
        let (first, events) = new_room("org1");
        assert_eq!(
            store
                .create_room(&first, &events, Some("r1"), &lease(), None)
                .await
                .unwrap(),
            Created::New
        );

        let (second, events) = new_room("org1");
        let outcome = store
            .create_room(&second, &events, Some("r1"), &lease(), None)
            .await
            .unwrap();
        assert_eq!(outcome, Created::Existing(Box::new(first)));
        assert_eq!(store.room_count(), 1);
    }

    #[tokio::test]
    async fn commit_rejects_stale_version() {
        let store = MemoryStore::new();
        let (mut room, events) = new_room("org1");
        store
            .create_room(&room, &events, None, &lease(), None)
            .await
            .unwrap();

        let opened = room.open(Utc::now()).unwrap();
        store.commit(&room, &opened, 1, &lease()).await.unwrap();
        let err = store.commit(&room, &[], 1, &lease()).await.unwrap_err();
        assert!(matches!(err, StoreError::VersionMismatch { actual: 2, .. }));

        let log = store.read_events("org1", room.id, 1, 10).await.unwrap();
        assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[tokio::test]
    async fn rooms_are_scoped_by_org() {
        let store = MemoryStore::new();
        let (room, events) = new_room("org1");
        store
            .create_room(&room, &events, None, &lease(), None)
            .await
            .unwrap();
        assert!(store.load_room("org2", room.id).await.unwrap().is_none());

        let everything = Filter::from_value(
            &serde_json::json!({}),
            &RoomDefinition::implicit("org2"),
            &roomd_model::Limits::default(),
        )
        .unwrap();
        let page = store
            .find_rooms(RoomQuery {
                org: "org2",
                principal: &Principal::Service,
                filter: &everything,
                order: &SortOrder::default(),
                offset: 0,
                limit: 10,
            })
            .await
            .unwrap();
        assert!(page.rooms.is_empty());
    }

    #[tokio::test]
    async fn subscribers_see_committed_events() {
        let store = MemoryStore::new();
        let (mut room, events) = new_room("org1");
        store
            .create_room(&room, &events, None, &lease(), None)
            .await
            .unwrap();
        let mut receiver = store.subscribe(room.id);

        let opened = room.open(Utc::now()).unwrap();
        store.commit(&room, &opened, 1, &lease()).await.unwrap();
        assert_eq!(receiver.recv().await.unwrap().seq, 2);
    }

    #[tokio::test]
    async fn stale_lease_is_fenced_and_changes_nothing() {
        let store = MemoryStore::new();
        let (mut room, events) = new_room("org1");
        store
            .create_room(&room, &events, None, &lease(), None)
            .await
            .unwrap();
        let seen = store.locate(room.id).await.unwrap().unwrap();
        let node_b = NodeId::from_stored("node-b");
        let Claimed::Won(_, lease_b) = store.claim_room(room.id, &seen, &node_b).await.unwrap()
        else {
            panic!("the claim of an unchanged room must win");
        };
        assert_eq!(lease_b.epoch, 2);
        assert_eq!(
            store.claim_room(room.id, &seen, &node_b).await.unwrap(),
            Claimed::Lost
        );

        let opened = room.open(Utc::now()).unwrap();
        let err = store.commit(&room, &opened, 1, &lease()).await.unwrap_err();
        assert!(matches!(err, StoreError::Fenced { .. }));
        assert_eq!(
            store
                .load_room("org1", room.id)
                .await
                .unwrap()
                .unwrap()
                .version,
            1
        );
        store.commit(&room, &opened, 1, &lease_b).await.unwrap();
    }

    #[tokio::test]
    async fn open_room_quota_counts_rooms_not_closed() {
        let store = MemoryStore::new();
        let (first, events) = new_room("org1");
        store
            .create_room(&first, &events, None, &lease(), Some(1))
            .await
            .unwrap();
        let (second, events) = new_room("org1");
        let err = store
            .create_room(&second, &events, None, &lease(), Some(1))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::OpenRoomLimit {
                org: "org1".into(),
                max: 1
            }
        );
        assert_eq!(store.room_count(), 1);
    }
}
