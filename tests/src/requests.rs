//! Requests and calls that several test files share: create requests,
//! definitions, finds, reads and watch streams.

use std::time::Duration;

use roomd_proto::v1::definitions_client::DefinitionsClient;
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::{
    CloseRoomRequest, CreateRoomRequest, DeleteRoomRequest, FindRoomsRequest, GetRoomRequest,
    JoinRoomRequest, LeaveRoomRequest, PropertyDefinition, PropertyType, PutRoomDefinitionRequest,
    Room, RoomConfigurationInput, RoomDefinition, RoomEvent, RoomState, UpdateRoomRequest,
    WatchRoomRequest,
};
use tonic::transport::Channel;

use crate::Caller;

/// Returns a create request for a room that starts open, so that no timer changes
/// it while a test runs (the default unused timeout is 300 s).
pub fn open_room(label: &str, acl: &[&str]) -> CreateRoomRequest {
    CreateRoomRequest {
        label: label.to_owned(),
        acl: acl.iter().map(|entry| (*entry).to_owned()).collect(),
        open: true,
        ..CreateRoomRequest::default()
    }
}

/// Returns a create request for an open room with at most `max_participants`
/// connected participants.
pub fn open_room_with_max(label: &str, acl: &[&str], max_participants: u32) -> CreateRoomRequest {
    CreateRoomRequest {
        configuration: Some(RoomConfigurationInput {
            max_participants: Some(max_participants),
            ..RoomConfigurationInput::default()
        }),
        ..open_room(label, acl)
    }
}

/// Returns a request for the room `room_id`.
pub fn get_request(room_id: &str) -> GetRoomRequest {
    GetRoomRequest {
        room_id: room_id.to_owned(),
    }
}

/// Returns a request that applies the JSON update document `update_json`.
pub fn update_request(room_id: &str, update_json: &str) -> UpdateRoomRequest {
    UpdateRoomRequest {
        room_id: room_id.to_owned(),
        update_json: update_json.to_owned(),
        expected_version: None,
    }
}

/// Returns a request that joins `account`, or the acting account when
/// `account` is empty.
pub fn join_request(room_id: &str, account: &str) -> JoinRoomRequest {
    JoinRoomRequest {
        room_id: room_id.to_owned(),
        account: account.to_owned(),
    }
}

/// Returns a request that makes `account` leave, or the acting account when
/// `account` is empty.
pub fn leave_request(room_id: &str, account: &str) -> LeaveRoomRequest {
    LeaveRoomRequest {
        room_id: room_id.to_owned(),
        account: account.to_owned(),
    }
}

pub fn close_request(room_id: &str) -> CloseRoomRequest {
    CloseRoomRequest {
        room_id: room_id.to_owned(),
    }
}

pub fn delete_request(room_id: &str) -> DeleteRoomRequest {
    DeleteRoomRequest {
        room_id: room_id.to_owned(),
    }
}

/// Returns a custom property for [`put_definition`].
pub fn property(name: &str, kind: PropertyType, indexed: bool) -> PropertyDefinition {
    PropertyDefinition {
        name: name.to_owned(),
        label: name.to_owned(),
        r#type: kind as i32,
        array: false,
        indexed,
    }
}

/// Stores the room definition of `org` with `properties`, acting
/// as the calling service, which alone may change it.
pub async fn put_definition(
    definitions: &mut DefinitionsClient<Channel>,
    org: &str,
    properties: Vec<PropertyDefinition>,
) -> RoomDefinition {
    let definition = RoomDefinition {
        org: org.to_owned(),
        label: "Visit".to_owned(),
        default_acl: Vec::new(),
        properties,
        max_open_rooms: None,
    };
    definitions
        .put_room_definition(Caller::service(org).request(PutRoomDefinitionRequest {
            definition: Some(definition),
        }))
        .await
        .unwrap_or_else(|status| panic!("put definition of {org}: {status:?}"))
        .into_inner()
}

/// Returns every room of `caller`'s org that `caller` may read, following
/// the page tokens.
pub async fn find_all_rooms(rooms: &mut RoomsClient<Channel>, caller: &Caller) -> Vec<Room> {
    let mut found = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = rooms
            .find_rooms(caller.request(FindRoomsRequest {
                page_token: page_token.clone(),
                ..FindRoomsRequest::default()
            }))
            .await
            .unwrap_or_else(|status| panic!("find rooms: {status:?}"))
            .into_inner();
        found.extend(page.rooms);
        if page.next_page_token.is_empty() {
            return found;
        }
        page_token = page.next_page_token;
    }
}

/// Creates a room as `caller` and returns it.
pub async fn create_room(
    rooms: &mut RoomsClient<Channel>,
    caller: &Caller,
    request: CreateRoomRequest,
) -> Room {
    rooms
        .create_room(caller.request(request))
        .await
        .unwrap_or_else(|status| panic!("create room: {status:?}"))
        .into_inner()
}

/// Reads a room as `caller`.
pub async fn get_room(rooms: &mut RoomsClient<Channel>, caller: &Caller, room_id: &str) -> Room {
    rooms
        .get_room(caller.request(get_request(room_id)))
        .await
        .unwrap_or_else(|status| panic!("get room {room_id}: {status:?}"))
        .into_inner()
}

/// Polls the room every 10 ms until it is in `state`, and returns it.
///
/// # Panics
/// When the room is not in `state` within `timeout`.
pub async fn wait_for_state(
    rooms: &mut RoomsClient<Channel>,
    caller: &Caller,
    room_id: &str,
    state: RoomState,
    timeout: Duration,
) -> Room {
    crate::eventually(timeout, Duration::from_millis(10), async || {
        let room = get_room(rooms, caller, room_id).await;
        if room.state == state as i32 {
            Ok(room)
        } else {
            Err(format!(
                "room {room_id} is {:?}, not {state:?}",
                room.state()
            ))
        }
    })
    .await
}

/// Joins the room as `caller`'s own account and returns the room.
pub async fn join_room(rooms: &mut RoomsClient<Channel>, caller: &Caller, room_id: &str) -> Room {
    rooms
        .join_room(caller.request(join_request(room_id, "")))
        .await
        .unwrap_or_else(|status| panic!("{caller:?} joins room {room_id}: {status:?}"))
        .into_inner()
}

/// Closes the room as `caller` and returns it.
pub async fn close_room(rooms: &mut RoomsClient<Channel>, caller: &Caller, room_id: &str) -> Room {
    rooms
        .close_room(caller.request(close_request(room_id)))
        .await
        .unwrap_or_else(|status| panic!("close room {room_id}: {status:?}"))
        .into_inner()
}

/// Opens a `WatchRoom` stream from `from_seq`.
pub async fn watch_events(
    rooms: &mut RoomsClient<Channel>,
    caller: &Caller,
    room_id: &str,
    from_seq: u64,
) -> tonic::Streaming<RoomEvent> {
    rooms
        .watch_room(caller.request(WatchRoomRequest {
            room_id: room_id.to_owned(),
            from_seq,
        }))
        .await
        .unwrap_or_else(|status| panic!("watch room {room_id}: {status:?}"))
        .into_inner()
}

/// Reads `count` events from a watch stream, failing if any takes longer
/// than `timeout`.
pub async fn next_events(
    stream: &mut tonic::Streaming<RoomEvent>,
    count: usize,
    timeout: Duration,
) -> Vec<RoomEvent> {
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let received = tokio::time::timeout(timeout, stream.message())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no event within {timeout:?} after {} of {count}",
                    events.len()
                )
            });
        match received {
            Ok(Some(event)) => events.push(event),
            Ok(None) => panic!("stream ended after {} of {count} events", events.len()),
            Err(status) => panic!("stream failed after {} events: {status:?}", events.len()),
        }
    }
    events
}

/// Reads a watch stream until it ends, failing if it stays open longer
/// than `timeout` in all.
pub async fn all_events(
    stream: &mut tonic::Streaming<RoomEvent>,
    timeout: Duration,
) -> Vec<RoomEvent> {
    let mut events = Vec::new();
    let read_all = async {
        while let Some(event) = stream.message().await.expect("watch stream failed") {
            events.push(event);
        }
    };
    tokio::time::timeout(timeout, read_all)
        .await
        .unwrap_or_else(|_| panic!("watch stream still open after {timeout:?}"));
    events
}

/// Returns the sequence numbers of `events`.
pub fn seqs(events: &[RoomEvent]) -> Vec<u64> {
    events.iter().map(|event| event.seq).collect()
}

/// Returns the names of `events`, such as `participant.joined`.
pub fn event_names(events: &[RoomEvent]) -> Vec<&str> {
    events.iter().map(|event| event.name.as_str()).collect()
}
