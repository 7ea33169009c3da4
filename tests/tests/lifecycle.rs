//! A room's life over gRPC: idempotent create, joins, close, find, delete,
//! and reads of a closed room once its actor has stopped.

use std::time::Duration;

use prost_types::value::Kind;
use roomd_actors::ServiceConfig;
use roomd_proto::v1::{
    CloseReason, CreateRoomRequest, FindRoomsRequest, ListParticipantsRequest, ParticipantStatus,
    PropertyType, Room, RoomState, SortField,
};
use roomd_server::ServerConfig;
use roomd_tests::{
    Caller, TestNode, all_events, close_room, delete_request, event_names, eventually,
    expect_fault, find_all_rooms, get_request, get_room, join_request, join_room, leave_request,
    open_room, property, put_definition, seqs, update_request, watch_events,
};
use tonic::Code;

const ORG: &str = "clinic1";

fn service() -> Caller {
    Caller::service(ORG)
}

/// Creates an open room that any account of the org may read, has the
/// account `patient1` join it, and closes it. Returns the closed room.
async fn closed_room_with_patient(node: &TestNode) -> Room {
    let mut rooms = node.rooms.clone();
    let room = node
        .create_room(&service(), open_room("Visit", &["account.public.read"]))
        .await;
    join_room(&mut rooms, &Caller::account(ORG, "patient1"), &room.id).await;
    close_room(&mut rooms, &service(), &room.id).await
}

/// Returns a create request for an open room with the custom property
/// `c_number` set to `number`.
fn numbered_room(number: u32) -> CreateRoomRequest {
    let mut request = open_room(&format!("Room {number}"), &[]);
    let custom = [("c_number".to_owned(), serde_json::json!(number))].into();
    request.custom = Some(roomd_proto::convert::json_object_to_struct(&custom));
    request
}

fn c_number(room: &Room) -> f64 {
    let custom = room.custom.as_ref().expect("a room has custom properties");
    match custom
        .fields
        .get("c_number")
        .and_then(|value| value.kind.as_ref())
    {
        Some(Kind::NumberValue(number)) => *number,
        other => panic!("c_number of room {} is not a number: {other:?}", room.id),
    }
}

#[tokio::test]
async fn create_with_request_id_is_idempotent() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let with_request_id = |label: &str, request_id: &str| CreateRoomRequest {
        request_id: request_id.to_owned(),
        ..open_room(label, &[])
    };

    let first = node
        .create_room(&service(), with_request_id("First", "visit-42"))
        .await;
    let retried = node
        .create_room(&service(), with_request_id("Retried", "visit-42"))
        .await;
    assert_eq!(retried.id, first.id);
    assert_eq!(
        retried.label, "First",
        "a retry returns the room made first"
    );
    assert_eq!(find_all_rooms(&mut rooms, &service()).await.len(), 1);

    let other = node
        .create_room(&service(), with_request_id("Other", "visit-43"))
        .await;
    assert_ne!(other.id, first.id);

    // Request ids are scoped by org.
    let other_org = Caller::service("clinic2");
    let elsewhere = node
        .create_room(&other_org, with_request_id("Elsewhere", "visit-42"))
        .await;
    assert_ne!(elsewhere.id, first.id);
    assert_eq!(elsewhere.org, "clinic2");

    assert_eq!(find_all_rooms(&mut rooms, &service()).await.len(), 2);
    assert_eq!(find_all_rooms(&mut rooms, &other_org).await.len(), 1);
}

#[tokio::test]
async fn join_twice_changes_nothing() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let room = node
        .create_room(&service(), open_room("Visit", &["account.public.read"]))
        .await;
    let patient = Caller::account(ORG, "patient1");

    let joined = join_room(&mut rooms, &patient, &room.id).await;
    assert_eq!(joined.version, room.version + 1);
    assert_eq!(joined.last_seq, room.last_seq + 1);

    let again = join_room(&mut rooms, &patient, &room.id).await;
    assert_eq!(again.version, joined.version);
    assert_eq!(again.last_seq, joined.last_seq);
    assert_eq!(again.participants, joined.participants);

    let list = ListParticipantsRequest {
        room_id: room.id.clone(),
    };
    let participants = rooms
        .list_participants(patient.request(list))
        .await
        .expect("list participants")
        .into_inner()
        .participants;
    assert_eq!(participants.len(), 1);
    assert_eq!(participants[0].account, "patient1");
    assert_eq!(participants[0].status, ParticipantStatus::Connected as i32);

    // Leaving twice changes nothing either.
    let left = rooms
        .leave_room(patient.request(leave_request(&room.id, "")))
        .await
        .expect("leave")
        .into_inner();
    assert_eq!(left.version, joined.version + 1);
    let left_again = rooms
        .leave_room(patient.request(leave_request(&room.id, "")))
        .await
        .expect("leave again")
        .into_inner();
    assert_eq!(left_again.version, left.version);
}

#[tokio::test]
async fn closed_room_never_reopens() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let closed = closed_room_with_patient(&node).await;
    assert_eq!(closed.state, RoomState::Closed as i32);
    assert_eq!(closed.close_reason, CloseReason::Requested as i32);
    assert!(closed.closed_at.is_some());
    assert_eq!(
        closed.participants[0].status,
        ParticipantStatus::Disconnected as i32
    );

    let reopen = || service().request(update_request(&closed.id, r#"{"$set":{"state":"open"}}"#));
    let fault = expect_fault(rooms.update_room(reopen()).await);
    fault.assert_for_room(Code::FailedPrecondition, "invalidState.closed", &closed.id);

    // Nor does a restart of its actor from the store reopen it.
    let room_id = closed
        .id
        .parse()
        .expect("the server returns a valid room id");
    node.service.kill_room(room_id);
    let fault = expect_fault(rooms.update_room(reopen()).await);
    fault.assert_for_room(Code::FailedPrecondition, "invalidState.closed", &closed.id);

    assert_eq!(get_room(&mut rooms, &service(), &closed.id).await, closed);
}

#[tokio::test]
async fn find_filters_sorts_and_pages() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let other_org = Caller::service("clinic2");
    for org in [ORG, "clinic2"] {
        let properties = vec![property("c_number", PropertyType::Number, true)];
        put_definition(&mut node.definitions.clone(), org, properties).await;
    }

    let mut ids_by_number = Vec::new();
    for number in [5, 2, 7, 1, 6, 3, 4] {
        let room = node.create_room(&service(), numbered_room(number)).await;
        ids_by_number.push((number, room.id));
        // The same number in another org must not show up.
        node.create_room(&other_org, numbered_room(number)).await;
    }
    node.create_room(&service(), open_room("No number", &[]))
        .await;
    ids_by_number.sort_unstable();

    let find = |filter: &str, page_token: &str| FindRoomsRequest {
        filter_json: filter.to_owned(),
        sort: vec![SortField {
            path: "c_number".to_owned(),
            descending: false,
        }],
        limit: 2,
        page_token: page_token.to_owned(),
    };
    let mut pages = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = find(r#"{"c_number":{"$gte":3}}"#, &page_token);
        let page = rooms
            .find_rooms(service().request(request))
            .await
            .expect("find rooms")
            .into_inner();
        assert!(
            page.rooms.len() <= 2,
            "page larger than the limit: {page:?}"
        );
        let page_ids: Vec<String> = page.rooms.iter().map(|room| room.id.clone()).collect();
        pages.push(page_ids);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let expected: Vec<String> = ids_by_number
        .iter()
        .filter(|(number, _)| *number >= 3)
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(pages.len(), 3, "pages: {pages:?}");
    assert_eq!(pages.concat(), expected);

    let either_end = FindRoomsRequest {
        filter_json: r#"{"$or":[{"c_number":1},{"c_number":{"$gt":6}}]}"#.to_owned(),
        ..find("", "")
    };
    let either_end = rooms
        .find_rooms(service().request(either_end))
        .await
        .expect("find with $or")
        .into_inner();
    let numbers: Vec<f64> = either_end.rooms.iter().map(c_number).collect();
    assert_eq!(numbers, [1.0, 7.0]);
    assert!(either_end.next_page_token.is_empty());

    // Closed rooms are found by state.
    let (_, closed_id) = &ids_by_number[0];
    close_room(&mut rooms, &service(), closed_id).await;
    let closed = FindRoomsRequest {
        filter_json: r#"{"state":"closed"}"#.to_owned(),
        ..FindRoomsRequest::default()
    };
    let closed = rooms
        .find_rooms(service().request(closed))
        .await
        .expect("find closed rooms")
        .into_inner();
    assert_eq!(closed.rooms.len(), 1);
    assert_eq!(&closed.rooms[0].id, closed_id);

    // Accounts find only the rooms they may read.
    let stranger = Caller::account(ORG, "stranger");
    assert!(find_all_rooms(&mut rooms, &stranger).await.is_empty());
}

#[tokio::test]
async fn deleted_room_is_not_found() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let room = node.create_room(&service(), open_room("Visit", &[])).await;
    let other_room = node.create_room(&service(), open_room("Other", &[])).await;

    let deleted = rooms
        .delete_room(service().request(delete_request(&room.id)))
        .await
        .expect("delete")
        .into_inner()
        .room
        .expect("the deleted room comes back");
    assert_eq!(deleted.state, RoomState::Closed as i32);
    assert_eq!(deleted.close_reason, CloseReason::Deleted as i32);

    let fault = expect_fault(
        rooms
            .get_room(service().request(get_request(&room.id)))
            .await,
    );
    fault.assert_for_room(Code::NotFound, "notFound.room", &room.id);

    let delete_again = service().request(delete_request(&room.id));
    let fault = expect_fault(rooms.delete_room(delete_again).await);
    fault.assert_for_room(Code::NotFound, "notFound.room", &room.id);

    let remaining = find_all_rooms(&mut rooms, &service()).await;
    assert_eq!(remaining, [other_room]);
}

#[tokio::test]
async fn closed_room_served_after_linger() {
    let linger = Duration::from_millis(100);
    let node = TestNode::start_with(ServerConfig {
        service: ServiceConfig {
            linger,
            ..ServiceConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let mut rooms = node.rooms.clone();
    let closed = closed_room_with_patient(&node).await;
    let room_id = closed.id.as_str();

    let service_handle = node.service.clone();
    eventually(
        Duration::from_secs(5),
        Duration::from_millis(20),
        async || match service_handle.live_rooms() {
            0 => Ok(()),
            live => Err(format!(
                "{live} room actors still run after the {linger:?} linger"
            )),
        },
    )
    .await;

    assert_eq!(get_room(&mut rooms, &service(), room_id).await, closed);
    let reader = Caller::account(ORG, "patient1");
    assert_eq!(get_room(&mut rooms, &reader, room_id).await, closed);
    // `account.public.read` matches every signed-in account, but not a
    // caller that is not signed in.
    let anonymous = Caller::account(ORG, "anonymous");
    let fault = expect_fault(
        rooms
            .get_room(anonymous.request(get_request(room_id)))
            .await,
    );
    fault.assert_for_room(Code::PermissionDenied, "accessDenied.read", room_id);

    let mut events = watch_events(&mut rooms, &reader, room_id, 1).await;
    let events = all_events(&mut events, Duration::from_secs(5)).await;
    assert_eq!(seqs(&events), (1..=closed.last_seq).collect::<Vec<_>>());
    assert_eq!(event_names(&events).last(), Some(&"room.closed"));

    let join = reader.request(join_request(room_id, ""));
    let fault = expect_fault(rooms.join_room(join).await);
    fault.assert_for_room(Code::FailedPrecondition, "invalidState.closed", room_id);
    assert_eq!(
        node.service.live_rooms(),
        0,
        "a request for a closed room started its actor"
    );

    // A closed room without an actor can still be deleted.
    rooms
        .delete_room(service().request(delete_request(room_id)))
        .await
        .expect("delete the closed room");
    let fault = expect_fault(
        rooms
            .get_room(service().request(get_request(room_id)))
            .await,
    );
    fault.assert_for_room(Code::NotFound, "notFound.room", room_id);
}
