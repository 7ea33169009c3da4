//! Limits under concurrent requests sent through three `roomd` processes
//! at once: a room's `maxParticipants` and an org's `maxOpenRooms` hold,
//! exactly as many requests as the limit allows succeed, and a freed slot
//! can be taken once.

use std::collections::BTreeSet;
use std::sync::Arc;

use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::{
    ParticipantStatus, PutRoomDefinitionRequest, Room, RoomDefinition, RoomState,
};
use roomd_tests::cluster_client::{
    definitions_client, map_concurrently, stored_events, stored_room,
};
use roomd_tests::{
    Caller, Cluster, Fault, close_room, expect_fault, find_all_rooms, get_room, join_request,
    leave_request, open_room, open_room_with_max,
};
use tokio::sync::Barrier;
use tonic::transport::Channel;
use tonic::{Code, Status};

const ORG: &str = "clinic-limits";
const JOINS_PER_NODE: usize = 10;
const MAX_OPEN_ROOMS: u32 = 5;
const CREATES_PER_NODE: usize = 5;

async fn clients_of(cluster: &Cluster) -> Vec<RoomsClient<Channel>> {
    let mut clients = Vec::new();
    for node in cluster.nodes() {
        clients.push(node.rooms_client().await);
    }
    clients
}

/// Sends one request per item through node `index % nodes`, all released
/// at the same moment by a barrier, and returns the results in order.
async fn all_at_once<T, F, Fut>(
    clients: &[RoomsClient<Channel>],
    count: usize,
    call: F,
) -> Vec<Result<T, Status>>
where
    T: Send + 'static,
    F: Fn(RoomsClient<Channel>, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<tonic::Response<T>, Status>> + Send + 'static,
{
    let clients = Arc::new(clients.to_vec());
    let barrier = Arc::new(Barrier::new(count));
    let call = Arc::new(call);
    map_concurrently(0..count, count, move |index| {
        let client = clients[index % clients.len()].clone();
        let barrier = barrier.clone();
        let call = call.clone();
        async move {
            barrier.wait().await;
            call(client, index).await.map(tonic::Response::into_inner)
        }
    })
    .await
}

fn connected(room: &Room) -> BTreeSet<String> {
    room.participants
        .iter()
        .filter(|participant| participant.status == ParticipantStatus::Connected as i32)
        .map(|participant| participant.account.clone())
        .collect()
}

#[tokio::test]
async fn max_participants_holds_across_nodes() {
    let cluster = Cluster::start(3).await;
    let mut clients = clients_of(&cluster).await;
    let mut redis = cluster.redis().client().await;
    let service = Caller::service(ORG);
    let room = roomd_tests::create_room(
        &mut clients[0],
        &service,
        open_room_with_max("Two at most", &["account.public.read"], 2),
    )
    .await;
    let room_id = room.id.clone();

    let joins = JOINS_PER_NODE * clients.len();
    let results = all_at_once(&clients, joins, {
        let room_id = room_id.clone();
        move |mut rooms, index| {
            let request = Caller::account(ORG, &format!("account-{index}"))
                .request(join_request(&room_id, ""));
            async move { rooms.join_room(request).await }
        }
    })
    .await;

    let mut joined = BTreeSet::new();
    for (index, result) in results.iter().enumerate() {
        match result {
            Ok(_) => {
                joined.insert(format!("account-{index}"));
            }
            Err(status) => Fault::from_status(status).assert_is(
                Code::ResourceExhausted,
                "limit.maxParticipants",
                &[("roomId", room_id.as_str()), ("max", "2")],
            ),
        }
    }
    assert_eq!(
        joined.len(),
        2,
        "joins that succeeded out of {joins}: {joined:?}"
    );

    for (node, rooms) in clients.iter_mut().enumerate() {
        let read = get_room(rooms, &service, &room_id).await;
        assert_eq!(connected(&read), joined, "participants through node {node}");
        assert_eq!(read.participants.len(), 2, "through node {node}: {read:?}");
    }
    let stored = stored_room(&mut redis, &room_id)
        .await
        .expect("the room is stored");
    let stored_accounts: BTreeSet<String> = stored
        .room
        .participants
        .iter()
        .map(|participant| participant.account.clone())
        .collect();
    assert_eq!(stored_accounts, joined);
    let joined_events = stored_events(&mut redis, &room_id)
        .await
        .into_iter()
        .filter(|event| event.name.as_str() == "participant.joined")
        .count();
    assert_eq!(joined_events, 2);

    // A leave frees one place, which exactly one of many new joins gets.
    let leaving = joined.first().expect("two joined").clone();
    clients[1]
        .leave_room(Caller::account(ORG, &leaving).request(leave_request(&room_id, "")))
        .await
        .expect("leave through node 1");
    let results = all_at_once(&clients, joins, {
        let room_id = room_id.clone();
        move |mut rooms, index| {
            let request = Caller::account(ORG, &format!("second-{index}"))
                .request(join_request(&room_id, ""));
            async move { rooms.join_room(request).await }
        }
    })
    .await;
    let second: Vec<usize> = (0..joins).filter(|index| results[*index].is_ok()).collect();
    assert_eq!(second.len(), 1, "joins after the leave: {results:?}");
    for result in &results {
        if let Err(status) = result {
            Fault::from_status(status).assert_is(
                Code::ResourceExhausted,
                "limit.maxParticipants",
                &[("roomId", room_id.as_str())],
            );
        }
    }
    let read = get_room(&mut clients[2], &service, &room_id).await;
    assert_eq!(read.participants.len(), 3, "{read:?}");
    assert_eq!(connected(&read).len(), 2, "{read:?}");
}

async fn put_max_open_rooms(
    cluster: &Cluster,
    max_open_rooms: Option<u32>,
) -> Result<RoomDefinition, Status> {
    let mut definitions = definitions_client(cluster.node(0)).await;
    let definition = RoomDefinition {
        org: ORG.to_owned(),
        label: "Visit".to_owned(),
        default_acl: Vec::new(),
        properties: Vec::new(),
        max_open_rooms,
    };
    definitions
        .put_room_definition(Caller::service(ORG).request(PutRoomDefinitionRequest {
            definition: Some(definition),
        }))
        .await
        .map(tonic::Response::into_inner)
}

async fn create_all_at_once(
    clients: &[RoomsClient<Channel>],
    count: usize,
    label: &str,
) -> Vec<Result<Room, Status>> {
    let label = label.to_owned();
    all_at_once(clients, count, move |mut rooms, index| {
        let request = Caller::service(ORG).request(open_room(&format!("{label} {index}"), &[]));
        async move { rooms.create_room(request).await }
    })
    .await
}

#[track_caller]
fn assert_open_room_limit(results: &[Result<Room, Status>]) {
    for result in results {
        if let Err(status) = result {
            Fault::from_status(status).assert_is(
                Code::ResourceExhausted,
                "limit.maxOpenRooms",
                &[("org", ORG), ("max", &MAX_OPEN_ROOMS.to_string())],
            );
        }
    }
}

#[tokio::test]
async fn max_open_rooms_holds_across_nodes() {
    let cluster = Cluster::start(3).await;
    let mut clients = clients_of(&cluster).await;
    let service = Caller::service(ORG);

    // Zero is not a valid quota. An unset one means no limit.
    let fault = expect_fault(
        put_max_open_rooms(&cluster, Some(0))
            .await
            .map(tonic::Response::new),
    );
    fault.assert_invalid("maxOpenRooms");
    let stored = put_max_open_rooms(&cluster, Some(MAX_OPEN_ROOMS))
        .await
        .expect("put the definition through node 0");
    assert_eq!(stored.max_open_rooms, Some(MAX_OPEN_ROOMS));

    let creates = CREATES_PER_NODE * clients.len();
    let results = create_all_at_once(&clients, creates, "Quota").await;
    let created: Vec<Room> = results
        .iter()
        .filter_map(|result| result.clone().ok())
        .collect();
    assert_eq!(
        created.len(),
        MAX_OPEN_ROOMS as usize,
        "creates that succeeded out of {creates}: {results:?}"
    );
    assert_open_room_limit(&results);

    let mut redis = cluster.redis().client().await;
    let open_set: u64 = redis::cmd("SCARD")
        .arg(format!("roomd:org:{ORG}:open"))
        .query_async(&mut redis)
        .await
        .expect("SCARD the org's open rooms");
    assert_eq!(open_set, u64::from(MAX_OPEN_ROOMS));
    for (node, rooms) in clients.iter_mut().enumerate() {
        let found = find_all_rooms(rooms, &service).await;
        assert_eq!(
            found.len(),
            MAX_OPEN_ROOMS as usize,
            "FindRooms through node {node}"
        );
    }

    // Another org has its own quota.
    let other_org = Caller::service("clinic-limits-other");
    roomd_tests::create_room(&mut clients[1], &other_org, open_room("Other org", &[])).await;

    // Closing one room frees one slot, which exactly one of many creates
    // gets.
    let closed = close_room(&mut clients[2], &service, &created[0].id).await;
    assert_eq!(closed.state, RoomState::Closed as i32);
    let results = create_all_at_once(&clients, creates, "After the close").await;
    let created_after: Vec<&Room> = results
        .iter()
        .filter_map(|result| result.as_ref().ok())
        .collect();
    assert_eq!(
        created_after.len(),
        1,
        "creates after the close: {results:?}"
    );
    assert_open_room_limit(&results);

    // Lifting the quota lets creates through again.
    put_max_open_rooms(&cluster, None)
        .await
        .expect("lift the quota");
    roomd_tests::create_room(&mut clients[1], &service, open_room("No quota", &[])).await;
}
