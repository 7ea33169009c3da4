//! Ownership of rooms between two nodes that share one store: a node that
//! lost a room cannot change it, a handed-off room is claimed by the next
//! node that asks, and a draining node claims nothing.
//!
//! Each node here has a [`SingleNode`] membership, so it takes every other
//! node for dead and claims its rooms on request, as a cluster does with a
//! node whose heartbeat expired.

use std::sync::Arc;

use async_trait::async_trait;
use roomd_actors::{Command, Membership, RoomService, ServiceConfig, SingleNode, SystemClock};
use roomd_model::{NewRoom, Principal, RoomError, RoomId, RoomState};
use roomd_store::{MemoryStore, NodeId, Store};

const ORG: &str = "clinic1";

async fn node(store: &Arc<MemoryStore>, membership: Arc<dyn Membership>) -> RoomService {
    RoomService::start(
        store.clone(),
        Arc::new(SystemClock),
        membership,
        ServiceConfig::default(),
    )
    .await
    .expect("start the room service")
}

async fn open_room(service: &RoomService) -> RoomId {
    let request = NewRoom {
        label: "Visit".into(),
        acl: vec!["account.public.update".into()],
        open: true,
        ..NewRoom::default()
    };
    service
        .create(ORG, &Principal::Service, request, None)
        .await
        .expect("create the room")
        .id
}

fn join(account: &str) -> Command {
    Command::Join {
        account: Some(account.to_owned()),
    }
}

#[tokio::test]
async fn node_that_lost_a_room_cannot_change_it() {
    let store = Arc::new(MemoryStore::new());
    let node_a = node(&store, Arc::new(SingleNode::new())).await;
    let node_b = node(&store, Arc::new(SingleNode::new())).await;
    let room_id = open_room(&node_a).await;

    // B takes A for dead and claims the room with the next epoch.
    let room = node_b.get(ORG, &Principal::Service, room_id).await.unwrap();
    assert_eq!(room.version, 1);
    let location = store.locate(room_id).await.unwrap().unwrap();
    assert_eq!(location.epoch, 2);
    assert_eq!(location.owner, Some(node_b.membership().node_id()));

    // A's actor still runs; its write is refused by the store.
    let fault = node_a
        .command(ORG, &Principal::Service, room_id, join("acc1"))
        .await
        .unwrap_err();
    assert!(
        matches!(fault, RoomError::NotOwner { .. }),
        "expected NotOwner, got {fault:?}"
    );
    let stored = store.load_room(ORG, room_id).await.unwrap().unwrap();
    assert!(stored.participants.is_empty());
    assert_eq!(stored.version, 1);

    // B's write applies, and its events carry B's epoch.
    let room = node_b
        .command(ORG, &Principal::Service, room_id, join("acc2"))
        .await
        .unwrap();
    assert_eq!(room.version, 2);
    let events = store.read_events(ORG, room_id, 1, 10).await.unwrap();
    let epochs: Vec<u64> = events.iter().map(|event| event.epoch).collect();
    assert_eq!(epochs, vec![1, 1, 2]);
}

#[tokio::test]
async fn handed_off_room_is_claimed_by_the_next_node() {
    let store = Arc::new(MemoryStore::new());
    let node_a = node(&store, Arc::new(SingleNode::new())).await;
    let room_id = open_room(&node_a).await;
    node_a
        .command(ORG, &Principal::Service, room_id, join("acc1"))
        .await
        .unwrap();

    assert_eq!(node_a.hand_off_rooms().await, 1);
    let location = store.locate(room_id).await.unwrap().unwrap();
    assert_eq!(location.owner, None);
    assert_eq!(node_a.live_rooms(), 0);

    let node_b = node(&store, Arc::new(SingleNode::new())).await;
    assert!(node_b.adopt(room_id).await.unwrap());
    let room = node_b
        .command(ORG, &Principal::Service, room_id, join("acc2"))
        .await
        .unwrap();
    assert_eq!(room.connected_count(), 2);
    assert_eq!(room.state, RoomState::Open);
}

/// A membership that is draining: it must not claim rooms.
struct Draining(SingleNode);

#[async_trait]
impl Membership for Draining {
    fn node_id(&self) -> NodeId {
        self.0.node_id()
    }

    fn serving(&self) -> bool {
        true
    }

    fn draining(&self) -> bool {
        true
    }

    async fn is_alive(&self, node: &NodeId) -> bool {
        self.0.is_alive(node).await
    }
}

#[tokio::test]
async fn draining_node_sends_requests_on_instead_of_claiming() {
    let store = Arc::new(MemoryStore::new());
    let node_a = node(&store, Arc::new(SingleNode::new())).await;
    let room_id = open_room(&node_a).await;
    node_a.hand_off_rooms().await;

    let draining = node(&store, Arc::new(Draining(SingleNode::new()))).await;
    let fault = draining
        .get(ORG, &Principal::Service, room_id)
        .await
        .unwrap_err();
    assert_eq!(
        fault,
        RoomError::NotOwner {
            room_id: room_id.to_string(),
            owner: None
        }
    );
    assert!(!draining.adopt(room_id).await.unwrap());
    assert_eq!(store.locate(room_id).await.unwrap().unwrap().owner, None);
}

#[tokio::test]
async fn room_of_another_org_is_not_found_even_unowned() {
    let store = Arc::new(MemoryStore::new());
    let node_a = node(&store, Arc::new(SingleNode::new())).await;
    let room_id = open_room(&node_a).await;
    node_a.hand_off_rooms().await;

    let fault = node_a
        .get("other-org", &Principal::Service, room_id)
        .await
        .unwrap_err();
    assert!(matches!(fault, RoomError::RoomNotFound { .. }));
    assert_eq!(store.locate(room_id).await.unwrap().unwrap().epoch, 1);
}

#[tokio::test]
async fn closed_room_lingering_is_stopped_without_a_write() {
    let store = Arc::new(MemoryStore::new());
    let node_a = node(&store, Arc::new(SingleNode::new())).await;
    let room_id = open_room(&node_a).await;
    node_a
        .command(ORG, &Principal::Service, room_id, Command::Close)
        .await
        .unwrap();
    let closed = store.load_room(ORG, room_id).await.unwrap().unwrap();

    assert_eq!(
        node_a.hand_off_rooms().await,
        1,
        "the lingering actor stops cleanly"
    );

    let stored = store.load_room(ORG, room_id).await.unwrap().unwrap();
    assert_eq!(stored, closed);
    let location = store.locate(room_id).await.unwrap().unwrap();
    assert!(location.closed);
    assert_eq!(location.owner, None);
}
