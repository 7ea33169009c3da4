//! Routing in a cluster of three `roomd` processes on one Redis server. A
//! room lives on one node, yet every node reads, changes, lists and watches
//! it. Finds see the rooms of all nodes, and a room definition stored
//! through one node applies on the others.

use std::collections::BTreeSet;
use std::time::Duration;

use roomd_proto::v1::{
    CreateRoomRequest, FindRoomsRequest, GetRoomDefinitionRequest, ListParticipantsRequest,
    ParticipantStatus, PropertyType, Room, RoomState,
};
use roomd_tests::cluster_client::{definitions_client, live_node_id, stored_events, stored_room};
use roomd_tests::{
    Caller, Cluster, all_events, close_room, event_names, expect_fault, find_all_rooms, get_room,
    join_room, leave_request, open_room, property, put_definition, seqs, update_request,
    watch_events,
};
use tonic::Code;

const ORG: &str = "clinic-routing";
/// How long the watcher may wait for the rest of the log after the close.
const WATCH_TIMEOUT: Duration = Duration::from_secs(10);

fn service() -> Caller {
    Caller::service(ORG)
}

async fn update_label(
    rooms: &mut roomd_proto::v1::rooms_client::RoomsClient<tonic::transport::Channel>,
    room_id: &str,
    label: &str,
) -> Room {
    let update = format!(r#"{{"$set":{{"label":"{label}"}}}}"#);
    rooms
        .update_room(service().request(update_request(room_id, &update)))
        .await
        .unwrap_or_else(|status| panic!("update label of {room_id} to {label:?}: {status:?}"))
        .into_inner()
}

async fn participants_through(
    rooms: &mut roomd_proto::v1::rooms_client::RoomsClient<tonic::transport::Channel>,
    room_id: &str,
) -> Vec<(String, i32)> {
    let listed = rooms
        .list_participants(service().request(ListParticipantsRequest {
            room_id: room_id.to_owned(),
        }))
        .await
        .unwrap_or_else(|status| panic!("list participants of {room_id}: {status:?}"))
        .into_inner();
    listed
        .participants
        .into_iter()
        .map(|participant| (participant.account, participant.status))
        .collect()
}

fn with_priority(label: &str, priority: serde_json::Value) -> CreateRoomRequest {
    let mut request = open_room(label, &[]);
    let custom = [("c_priority".to_owned(), priority)].into();
    request.custom = Some(roomd_proto::convert::json_object_to_struct(&custom));
    request
}

#[tokio::test]
async fn room_served_and_watched_through_every_node() {
    let cluster = Cluster::start(3).await;
    let mut redis = cluster.redis().client().await;
    let mut a = cluster.node(0).rooms_client().await;
    let mut b = cluster.node(1).rooms_client().await;
    let mut c = cluster.node(2).rooms_client().await;
    let node_a = live_node_id(&mut redis, cluster.node(0)).await;

    let created = roomd_tests::create_room(
        &mut a,
        &service(),
        open_room("Routing", &["account.public.read"]),
    )
    .await;
    let room_id = created.id.clone();
    let stored = stored_room(&mut redis, &room_id)
        .await
        .expect("the created room is stored");
    assert_eq!(
        stored.owner,
        node_a,
        "a room created through an idle node stays on it\n{}",
        cluster.logs()
    );

    // The watcher on C starts before any change and follows the log live.
    let mut watch = watch_events(&mut c, &service(), &room_id, 1).await;

    for (name, rooms) in [("B", &mut b), ("C", &mut c)] {
        let read = get_room(rooms, &service(), &room_id).await;
        assert_eq!(read, created, "GetRoom through {name}");
    }

    let mut acknowledged = vec![created.clone()];
    acknowledged.push(update_label(&mut b, &room_id, "Updated through B").await);
    acknowledged.push(join_room(&mut c, &Caller::account(ORG, "p1"), &room_id).await);
    acknowledged.push(join_room(&mut b, &Caller::account(ORG, "p2"), &room_id).await);

    let expected_participants = vec![
        ("p1".to_owned(), ParticipantStatus::Connected as i32),
        ("p2".to_owned(), ParticipantStatus::Connected as i32),
    ];
    for (name, rooms) in [("A", &mut a), ("B", &mut b), ("C", &mut c)] {
        assert_eq!(
            participants_through(rooms, &room_id).await,
            expected_participants,
            "ListParticipants through {name}"
        );
    }

    acknowledged.push(update_label(&mut a, &room_id, "Updated through A").await);
    let leave = Caller::account(ORG, "p1").request(leave_request(&room_id, ""));
    acknowledged.push(
        c.leave_room(leave)
            .await
            .expect("p1 leaves through C")
            .into_inner(),
    );
    for (name, rooms) in [("A", &mut a), ("B", &mut b), ("C", &mut c)] {
        let read = get_room(rooms, &service(), &room_id).await;
        assert_eq!(
            read,
            *acknowledged.last().unwrap(),
            "GetRoom through {name} after the leave"
        );
        assert_eq!(read.label, "Updated through A");
    }
    acknowledged.push(close_room(&mut b, &service(), &room_id).await);

    let versions: Vec<u64> = acknowledged.iter().map(|room| room.version).collect();
    assert!(
        versions.windows(2).all(|pair| pair[0] < pair[1]),
        "acknowledged versions do not increase: {versions:?}"
    );

    let events = all_events(&mut watch, WATCH_TIMEOUT).await;
    let expected_seqs: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs(&events), expected_seqs, "watched events: {events:?}");
    let names = event_names(&events);
    assert_eq!(
        names,
        [
            "room.created",
            "room.opened",
            "room.updated",
            "participant.joined",
            "participant.joined",
            "room.updated",
            "participant.left",
            // The close disconnects p2, then closes the room.
            "participant.left",
            "room.closed",
        ],
        "watched events: {events:?}"
    );
    assert_eq!(events[3].account_id, "p1");
    assert_eq!(events[4].account_id, "p2");
    assert_eq!(events[6].account_id, "p1");
    assert_eq!(events[7].account_id, "p2");
    let closed = acknowledged.last().unwrap();
    assert_eq!(events.len() as u64, closed.last_seq);
    for room in &acknowledged {
        assert!(
            events.iter().any(|event| event.version == room.version),
            "no watched event has the acknowledged version {}: {events:?}",
            room.version
        );
    }

    // The watcher saw exactly the stored log.
    let stored = stored_events(&mut redis, &room_id).await;
    let stored_summary: Vec<(u64, String, u64)> = stored
        .iter()
        .map(|event| (event.seq, event.name.to_string(), event.version))
        .collect();
    let watched_summary: Vec<(u64, String, u64)> = events
        .iter()
        .map(|event| (event.seq, event.name.clone(), event.version))
        .collect();
    assert_eq!(watched_summary, stored_summary);
}

#[tokio::test]
async fn find_sees_rooms_of_every_node() {
    let cluster = Cluster::start(3).await;
    let mut redis = cluster.redis().client().await;
    let mut clients = Vec::new();
    let mut node_ids = Vec::new();
    for node in cluster.nodes() {
        clients.push(node.rooms_client().await);
        node_ids.push(live_node_id(&mut redis, node).await);
    }

    let mut created = BTreeSet::new();
    let mut owners = BTreeSet::new();
    for (index, rooms) in clients.iter_mut().enumerate() {
        let room = roomd_tests::create_room(
            rooms,
            &service(),
            open_room(&format!("Created through node {index}"), &[]),
        )
        .await;
        let stored = stored_room(&mut redis, &room.id)
            .await
            .expect("the created room is stored");
        owners.insert(stored.owner);
        created.insert(room.id);
    }
    let expected_owners: BTreeSet<String> = node_ids.into_iter().collect();
    assert_eq!(
        owners,
        expected_owners,
        "each idle node keeps the room created through it\n{}",
        cluster.logs()
    );

    for (index, rooms) in clients.iter_mut().enumerate() {
        let found: BTreeSet<String> = find_all_rooms(rooms, &service())
            .await
            .into_iter()
            .map(|room| room.id)
            .collect();
        assert_eq!(found, created, "FindRooms through node {index}");

        let open = rooms
            .find_rooms(service().request(FindRoomsRequest {
                filter_json: r#"{"state":"open"}"#.to_owned(),
                ..FindRoomsRequest::default()
            }))
            .await
            .expect("find open rooms")
            .into_inner();
        assert_eq!(open.rooms.len(), 3, "open rooms through node {index}");
        assert!(
            open.rooms
                .iter()
                .all(|room| room.state == RoomState::Open as i32)
        );
    }
}

#[tokio::test]
async fn definition_put_through_one_node_applies_on_another() {
    const DEFINITION_ORG: &str = "clinic-definitions";
    let cluster = Cluster::start(3).await;
    let service = Caller::service(DEFINITION_ORG);
    let mut definitions_a = definitions_client(cluster.node(0)).await;
    let mut definitions_b = definitions_client(cluster.node(1)).await;
    let mut b = cluster.node(1).rooms_client().await;
    let mut c = cluster.node(2).rooms_client().await;

    let stored = put_definition(
        &mut definitions_a,
        DEFINITION_ORG,
        vec![property("c_priority", PropertyType::Number, true)],
    )
    .await;
    let read = definitions_b
        .get_room_definition(service.request(GetRoomDefinitionRequest {}))
        .await
        .expect("get the definition through B")
        .into_inner();
    assert_eq!(read, stored);

    let urgent = roomd_tests::create_room(
        &mut b,
        &service,
        with_priority("Urgent", serde_json::json!(3)),
    )
    .await;
    roomd_tests::create_room(
        &mut b,
        &service,
        with_priority("Routine", serde_json::json!(1)),
    )
    .await;

    // The definition types c_priority as a number on B too.
    let fault = expect_fault(
        b.create_room(service.request(with_priority("Wrong type", serde_json::json!("high"))))
            .await,
    );
    fault.assert_invalid("c_priority");
    // A property the definition does not have is rejected.
    let mut unknown = open_room("Unknown property", &[]);
    let custom = [("c_unknown".to_owned(), serde_json::json!(1))].into();
    unknown.custom = Some(roomd_proto::convert::json_object_to_struct(&custom));
    let fault = expect_fault(b.create_room(service.request(unknown)).await);
    assert_eq!(fault.code, Code::InvalidArgument, "{fault:?}");

    // The indexed property filters finds through C.
    let found = c
        .find_rooms(service.request(FindRoomsRequest {
            filter_json: r#"{"c_priority":{"$gte":2}}"#.to_owned(),
            ..FindRoomsRequest::default()
        }))
        .await
        .expect("find by c_priority through C")
        .into_inner();
    let found: Vec<&str> = found.rooms.iter().map(|room| room.id.as_str()).collect();
    assert_eq!(found, [urgent.id.as_str()]);
}
