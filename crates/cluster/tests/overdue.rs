//! The scan for overdue timers: a room whose actor is gone for good (its
//! restart budget ran out) still closes when its unused timeout passes.

use std::sync::Arc;
use std::time::Duration;

use roomd_actors::registry::RestartPolicy;
use roomd_actors::{RoomService, ServiceConfig, SystemClock};
use roomd_cluster::{Cluster, ClusterConfig, ClusterNode};
use roomd_model::{ConfigurationInput, NewRoom, Principal, RoomState};
use roomd_store::{MemoryStore, Store};

const ORG: &str = "clinic1";

#[tokio::test]
async fn overdue_room_without_actor_closes() {
    let store = Arc::new(MemoryStore::new());
    let config = ClusterConfig {
        node_ttl: Duration::from_secs(1),
        advertise_address: "127.0.0.1:1".into(),
    };
    let node = ClusterNode::join(store.clone(), config).await.unwrap();
    let service_config = ServiceConfig {
        // No restart: a killed actor stays down.
        restart: RestartPolicy {
            budget: 0,
            ..RestartPolicy::default()
        },
        ..ServiceConfig::default()
    };
    let service = RoomService::start(
        store.clone(),
        Arc::new(SystemClock),
        node.clone(),
        service_config,
    )
    .await
    .unwrap();
    let cluster = Cluster::start(node, service.clone());

    let request = NewRoom {
        label: "Left alone".into(),
        open: true,
        configuration: ConfigurationInput {
            unused_timeout: Some(1),
            ..ConfigurationInput::default()
        },
        ..NewRoom::default()
    };
    let room = service
        .create(ORG, &Principal::Service, request, None)
        .await
        .unwrap();
    assert!(service.kill_room(room.id));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!service.runs(room.id), "the killed actor must stay down");

    // Deadline (1 s) + grace (the 1 s node TTL) + a few scans.
    let mut state = RoomState::Open;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = store.load_room(ORG, room.id).await.unwrap().unwrap().state;
        if state == RoomState::Closed {
            break;
        }
    }
    assert_eq!(
        state,
        RoomState::Closed,
        "the overdue scan did not close the room"
    );
    let closed = store.load_room(ORG, room.id).await.unwrap().unwrap();
    assert_eq!(
        closed.close_reason.map(|r| r.as_str()),
        Some("unused_timeout")
    );

    cluster.leave().await;
}
