//! The limits that a real `roomd` process enforces over gRPC, each at and
//! just over its bound: request size, open watches per room and per caller,
//! the request rate per caller, and flags that reach the model's checks.
//! Every rejected request must leave the room unchanged.

use std::time::Duration;

use prost::Message;
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::{FindRoomsRequest, Room, UpdateRoomRequest, WatchRoomRequest};
use roomd_tests::{
    Caller, RoomdProcess, create_room, eventually, expect_fault, get_request, get_room, open_room,
    update_request,
};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const ORG: &str = "clinic1";

fn service() -> Caller {
    Caller::service(ORG)
}

/// Asserts that the room still equals `before`, version included.
async fn assert_unchanged(rooms: &mut RoomsClient<Channel>, before: &Room) {
    let after = get_room(rooms, &service(), &before.id).await;
    assert_eq!(&after, before, "a rejected request changed the room");
}

/// Returns an update of the label to `label`, padded with JSON white space
/// so that the encoded request is exactly `encoded_bytes` long.
fn update_of_size(room_id: &str, label: &str, encoded_bytes: usize) -> UpdateRoomRequest {
    let mut request = update_request(room_id, &format!(r#"{{"$set": {{"label": "{label}"}}}}"#));
    while request.encoded_len() < encoded_bytes {
        request.update_json.push(' ');
    }
    assert_eq!(
        request.encoded_len(),
        encoded_bytes,
        "padding cannot reach the size"
    );
    request
}

fn watch_request(room_id: &str) -> WatchRoomRequest {
    WatchRoomRequest {
        room_id: room_id.to_owned(),
        from_seq: 1,
    }
}

#[tokio::test]
async fn request_size_at_and_over_limit() {
    let process = RoomdProcess::spawn(&["--max-request-bytes", "2000"]).await;
    let mut rooms = process.rooms_client().await;
    let room = create_room(&mut rooms, &service(), open_room("Visit", &[])).await;

    let at_limit = update_of_size(&room.id, "At", 2000);
    let updated = rooms
        .update_room(service().request(at_limit))
        .await
        .unwrap_or_else(|status| panic!("update of exactly 2000 bytes: {status:?}"))
        .into_inner();
    assert_eq!(updated.label, "At");

    let over_limit = update_of_size(&room.id, "Over", 2001);
    let fault = expect_fault(rooms.update_room(service().request(over_limit)).await);
    fault.assert_is(
        Code::ResourceExhausted,
        "limit.requestSize",
        &[("max", "2000")],
    );
    assert!(fault.message.contains("2000 bytes"), "{fault:?}");
    assert_unchanged(&mut rooms, &updated).await;
}

#[tokio::test]
async fn watchers_per_room_at_and_over_limit() {
    let process = RoomdProcess::spawn(&["--max-watchers-per-room", "2"]).await;
    let mut rooms = process.rooms_client().await;
    let room = create_room(
        &mut rooms,
        &service(),
        open_room("Visit", &["account.public.read"]),
    )
    .await;

    let first = rooms
        .watch_room(Caller::account(ORG, "a").request(watch_request(&room.id)))
        .await
        .expect("first watch");
    let _second = rooms
        .watch_room(Caller::account(ORG, "b").request(watch_request(&room.id)))
        .await
        .expect("second watch");
    let third = rooms
        .watch_room(Caller::account(ORG, "c").request(watch_request(&room.id)))
        .await;
    let fault = expect_fault(third);
    fault.assert_is(
        Code::ResourceExhausted,
        "limit.watchers",
        &[
            ("roomId", room.id.as_str()),
            ("scope", "room"),
            ("max", "2"),
        ],
    );
    assert_unchanged(&mut rooms, &room).await;

    // A watch that ends frees its place.
    drop(first);
    let request = || Caller::account(ORG, "c").request(watch_request(&room.id));
    let _third = eventually(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || {
            rooms
                .watch_room(request())
                .await
                .map_err(|status| format!("{status:?}"))
        },
    )
    .await;
}

#[tokio::test]
async fn watchers_per_caller_at_and_over_limit() {
    let process = RoomdProcess::spawn(&["--max-watchers-per-caller", "2"]).await;
    let mut rooms = process.rooms_client().await;
    let acl = ["account.public.read"];
    let first = create_room(&mut rooms, &service(), open_room("One", &acl)).await;
    let second = create_room(&mut rooms, &service(), open_room("Two", &acl)).await;
    let third = create_room(&mut rooms, &service(), open_room("Three", &acl)).await;
    let watcher = Caller::account(ORG, "a");

    let _first_watch = rooms
        .watch_room(watcher.request(watch_request(&first.id)))
        .await
        .expect("first watch");
    let _second_watch = rooms
        .watch_room(watcher.request(watch_request(&second.id)))
        .await
        .expect("second watch");
    let fault = expect_fault(
        rooms
            .watch_room(watcher.request(watch_request(&third.id)))
            .await,
    );
    fault.assert_is(
        Code::ResourceExhausted,
        "limit.watchers",
        &[("scope", "caller"), ("max", "2")],
    );

    // The same account in another org, and another account, are other
    // callers.
    let _other_account = rooms
        .watch_room(Caller::account(ORG, "b").request(watch_request(&third.id)))
        .await
        .expect("watch by another account");
    let other_org = rooms
        .watch_room(Caller::account("clinic2", "a").request(watch_request(&third.id)))
        .await;
    expect_fault(other_org).assert_is(Code::NotFound, "notFound.room", &[]);
}

#[tokio::test]
async fn rate_at_and_over_limit() {
    let process = RoomdProcess::spawn(&["--rate-limit", "1", "--rate-burst", "3"]).await;
    let mut rooms = process.rooms_client().await;
    let room = create_room(
        &mut rooms,
        &service(),
        open_room("Visit", &["account.editor.update"]),
    )
    .await;
    let editor = Caller::account(ORG, "editor");

    // The service's own requests count under another key.
    let mut updated = room.clone();
    for label in ["One", "Two", "Three"] {
        let document = format!(r#"{{"$set": {{"label": "{label}"}}}}"#);
        updated = rooms
            .update_room(editor.request(update_request(&room.id, &document)))
            .await
            .unwrap_or_else(|status| panic!("update {label} within the burst: {status:?}"))
            .into_inner();
    }
    assert_eq!(updated.version, room.version + 3);

    let over = rooms
        .update_room(editor.request(update_request(&room.id, r#"{"$set": {"label": "Four"}}"#)))
        .await;
    let status = over.expect_err("a fourth request within a second passed");
    let retry = status
        .get_details_retry_info()
        .expect("a rate fault carries RetryInfo");
    let delay = retry.retry_delay.expect("RetryInfo has a delay");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(1),
        "{delay:?}"
    );
    let fault = roomd_tests::Fault::from_status(&status);
    fault.assert_is(Code::ResourceExhausted, "limit.rate", &[("max", "1")]);
    assert_unchanged(&mut rooms, &updated).await;

    let other = Caller::account(ORG, "reader");
    let other_reply = rooms.get_room(other.request(get_request(&room.id))).await;
    expect_fault(other_reply).assert_for_room(
        Code::PermissionDenied,
        "accessDenied.read",
        &room.id,
    );
}

#[tokio::test]
async fn shape_flags_reach_the_model() {
    let process = RoomdProcess::spawn(&[
        "--max-label-chars",
        "5",
        "--max-page-size",
        "2",
        "--max-filter-depth",
        "1",
    ])
    .await;
    let mut rooms = process.rooms_client().await;

    let room = create_room(&mut rooms, &service(), open_room("12345", &[])).await;
    let fault = expect_fault(
        rooms
            .create_room(service().request(open_room("123456", &[])))
            .await,
    );
    fault.assert_invalid("label");
    assert!(fault.message.contains("the limit is 5"), "{fault:?}");

    let fault = expect_fault(
        rooms
            .update_room(
                service().request(update_request(&room.id, r#"{"$set": {"label": "123456"}}"#)),
            )
            .await,
    );
    fault.assert_invalid("label");
    assert_unchanged(&mut rooms, &room).await;

    let page = |limit: u32, filter: &str| {
        service().request(FindRoomsRequest {
            limit,
            filter_json: filter.to_owned(),
            ..FindRoomsRequest::default()
        })
    };
    assert!(rooms.find_rooms(page(2, "")).await.is_ok());
    expect_fault(rooms.find_rooms(page(3, "")).await).assert_invalid("limit");

    let one_level = r#"{"$and": [{"state": "open"}]}"#;
    assert!(rooms.find_rooms(page(2, one_level)).await.is_ok());
    let two_levels = r#"{"$and": [{"$or": [{"state": "open"}]}]}"#;
    let fault = expect_fault(rooms.find_rooms(page(2, two_levels)).await);
    fault.assert_is(Code::InvalidArgument, "invalidArgument.validation", &[]);
    assert!(fault.message.contains("1 levels, the limit"), "{fault:?}");
}
