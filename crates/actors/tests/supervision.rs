//! Supervision of room actors and of the registry, with paused time. A killed
//! actor comes back from the store after its backoff. A room that keeps
//! failing stops being restarted once its budget is spent, and the next
//! request for it loads it again.

use std::sync::Arc;
use std::time::Duration;

use roomd_actors::registry::RestartPolicy;
use roomd_actors::{Command, RoomService, ServiceConfig, SingleNode, TokioClock};
use roomd_model::{NewRoom, Principal, RoomId, RoomState};
use roomd_store::MemoryStore;

const ORG: &str = "clinic1";
const BACKOFF: Duration = Duration::from_millis(50);

async fn start(budget: usize) -> RoomService {
    let config = ServiceConfig {
        restart: RestartPolicy {
            backoff: BACKOFF,
            max_backoff: Duration::from_secs(1),
            budget,
            window: Duration::from_secs(60),
        },
        ..ServiceConfig::default()
    };
    RoomService::start(
        Arc::new(MemoryStore::new()),
        Arc::new(TokioClock::new()),
        Arc::new(SingleNode::new()),
        config,
    )
    .await
    .expect("start the room service")
}

async fn open_room(service: &RoomService) -> RoomId {
    let request = NewRoom {
        label: "Visit".into(),
        acl: vec!["account.public.read".into()],
        open: true,
        ..NewRoom::default()
    };
    service
        .create(ORG, &Principal::Service, request, None)
        .await
        .expect("create the room")
        .id
}

/// Kills the room's actor and lets paused time run past `wait`.
async fn kill_and_wait(service: &RoomService, room_id: RoomId, wait: Duration) {
    let killed = service.kill_room(room_id);
    assert!(killed, "room {room_id} had no running actor to kill");
    tokio::time::sleep(wait).await;
}

#[tokio::test(start_paused = true)]
async fn killed_actor_restarts_after_backoff() {
    let service = start(5).await;
    let room_id = open_room(&service).await;
    service
        .command(
            ORG,
            &Principal::account("acc1"),
            room_id,
            Command::Join { account: None },
        )
        .await
        .expect("acc1 joins");

    kill_and_wait(&service, room_id, BACKOFF * 2).await;

    assert_eq!(
        service.live_rooms(),
        1,
        "the registry did not restart the room"
    );
    let room = service
        .get(ORG, &Principal::Service, room_id)
        .await
        .expect("the restarted room serves reads");
    assert_eq!(room.state, RoomState::Open);
    assert_eq!(
        room.connected_count(),
        1,
        "the join was lost across the restart"
    );
}

#[tokio::test(start_paused = true)]
async fn spent_budget_stops_restarts_until_next_request() {
    let service = start(2).await;
    let room_id = open_room(&service).await;

    // Two restarts fit the budget; the backoff doubles for the second one.
    kill_and_wait(&service, room_id, BACKOFF * 2).await;
    assert_eq!(service.live_rooms(), 1, "first restart missing");
    kill_and_wait(&service, room_id, BACKOFF * 4).await;
    assert_eq!(service.live_rooms(), 1, "second restart missing");

    // The third failure within the window is over budget.
    kill_and_wait(&service, room_id, Duration::from_secs(5)).await;
    assert_eq!(
        service.live_rooms(),
        0,
        "the room restarted beyond its budget"
    );

    // A request loads the room from the store again.
    let room = service
        .get(ORG, &Principal::Service, room_id)
        .await
        .expect("the next request activates the room");
    assert_eq!(room.state, RoomState::Open);
    assert_eq!(service.live_rooms(), 1);
}

#[tokio::test(start_paused = true)]
async fn killed_registry_restarts_its_rooms_from_the_store() {
    let service = start(5).await;
    let rooms = [open_room(&service).await, open_room(&service).await];
    service
        .command(
            ORG,
            &Principal::account("acc1"),
            rooms[0],
            Command::Join { account: None },
        )
        .await
        .expect("acc1 joins");

    assert_eq!(service.kill_registry(), 2);
    tokio::time::sleep(BACKOFF * 4).await;

    assert_eq!(
        service.live_rooms(),
        2,
        "the new registry did not restart both rooms"
    );
    let room = service
        .command(
            ORG,
            &Principal::account("acc2"),
            rooms[0],
            Command::Join { account: None },
        )
        .await
        .expect("the restarted room takes a join");
    let connected: Vec<_> = room
        .participants
        .iter()
        .map(|p| p.account.as_str())
        .collect();
    assert_eq!(
        connected,
        ["acc1", "acc2"],
        "the join before the kill was lost"
    );
    let made = open_room(&service).await;
    assert!(
        service.runs(made),
        "the new registry does not start new rooms"
    );
}

#[tokio::test(start_paused = true)]
async fn registry_that_keeps_failing_fails_the_node() {
    let service = start(2).await;
    open_room(&service).await;

    for _ in 0..2 {
        service.kill_registry();
        tokio::time::sleep(BACKOFF).await;
    }
    let failed = tokio::time::timeout(Duration::from_secs(1), service.failed()).await;
    assert!(failed.is_err(), "two failures are within a budget of 2");

    service.kill_registry();
    tokio::time::timeout(Duration::from_secs(1), service.failed())
        .await
        .expect("a third failure spends the budget and fails the node");
}
