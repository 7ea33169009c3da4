//! Every fault this build can return over gRPC: its code, its `ErrorInfo`
//! reason, domain and metadata, its `BadRequest` field for invalid input,
//! and, for each rejected request, that the room and the store are
//! unchanged afterwards.
//!
//! Not covered: `limit.maxOpenRooms` (no org quota exists yet) and
//! `unavailable.store` / `unavailable.owner`, which the in-memory store
//! cannot be made to return on demand.

use prost_types::Timestamp;
use roomd_proto::v1::{
    CreateRoomRequest, FindRoomsRequest, GetRoomDefinitionRequest, ListParticipantsRequest,
    PropertyType, PutRoomDefinitionRequest, Room, RoomConfigurationInput, RoomDefinition,
    RoomState, UpdateRoomRequest, WatchRoomRequest,
};
use roomd_tests::{
    Caller, Fault, TestNode, close_request, close_room, delete_request, expect_fault,
    find_all_rooms, get_request, get_room, join_request, join_room, leave_request, open_room,
    open_room_with_max, property, put_definition, update_request,
};
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::transport::Channel;
use tonic::{Code, Status};

type RoomsClient = roomd_proto::v1::rooms_client::RoomsClient<Channel>;

const ORG: &str = "clinic1";

fn service() -> Caller {
    Caller::service(ORG)
}

/// Asserts that the stored room still equals `before` in every field,
/// version included.
async fn assert_unchanged(rooms: &mut RoomsClient, before: &Room) {
    let after = get_room(rooms, &service(), &before.id).await;
    assert_eq!(after.version, before.version, "version changed");
    assert_eq!(&after, before, "room changed");
}

/// Asserts that the org contains exactly the rooms in `expected_ids`.
async fn assert_room_ids(rooms: &mut RoomsClient, expected_ids: &[&str]) {
    let stored = find_all_rooms(rooms, &service()).await;
    let mut stored_ids: Vec<&str> = stored.iter().map(|room| room.id.as_str()).collect();
    stored_ids.sort_unstable();
    let mut expected_ids = expected_ids.to_vec();
    expected_ids.sort_unstable();
    assert_eq!(stored_ids, expected_ids);
}

/// Starts a node whose org has `c_number` (indexed) and `c_note` (not
/// indexed), and creates one open room that the account `reader` may read.
async fn node_with_room() -> (TestNode, RoomsClient, Room) {
    let node = TestNode::start().await;
    let properties = vec![
        property("c_number", PropertyType::Number, true),
        property("c_note", PropertyType::String, false),
    ];
    put_definition(&mut node.definitions.clone(), ORG, properties).await;
    let room = node
        .create_room(&service(), open_room("Visit", &["account.reader.read"]))
        .await;
    let rooms = node.rooms.clone();
    (node, rooms, room)
}

fn in_an_hour() -> Timestamp {
    let at = chrono::Utc::now() + chrono::Duration::hours(1);
    Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    }
}

// --- notFound ---------------------------------------------------------------

#[tokio::test]
async fn unknown_room_is_not_found() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let unknown = uuid::Uuid::now_v7().to_string();
    let label_update = update_request(&unknown, r#"{"$set":{"label":"x"}}"#);

    let fault = expect_fault(
        rooms
            .get_room(service().request(get_request(&unknown)))
            .await,
    );
    fault.assert_for_room(Code::NotFound, "notFound.room", &unknown);

    let fault = expect_fault(rooms.update_room(service().request(label_update)).await);
    fault.assert_for_room(Code::NotFound, "notFound.room", &unknown);

    let join = join_request(&unknown, "acc1");
    let fault = expect_fault(rooms.join_room(service().request(join)).await);
    fault.assert_for_room(Code::NotFound, "notFound.room", &unknown);

    assert_room_ids(&mut rooms, &[]).await;
}

#[tokio::test]
async fn room_of_other_org_is_not_found() {
    let (_node, mut rooms, room) = node_with_room().await;
    let other_org = Caller::service("clinic2");
    let takeover = update_request(&room.id, r#"{"$set":{"label":"Taken over"}}"#);
    let watch = WatchRoomRequest {
        room_id: room.id.clone(),
        from_seq: 1,
    };

    let fault = expect_fault(
        rooms
            .get_room(other_org.request(get_request(&room.id)))
            .await,
    );
    fault.assert_for_room(Code::NotFound, "notFound.room", &room.id);

    let fault = expect_fault(rooms.update_room(other_org.request(takeover)).await);
    fault.assert_for_room(Code::NotFound, "notFound.room", &room.id);

    let join = join_request(&room.id, "acc1");
    let fault = expect_fault(rooms.join_room(other_org.request(join)).await);
    fault.assert_for_room(Code::NotFound, "notFound.room", &room.id);

    let delete = delete_request(&room.id);
    let fault = expect_fault(rooms.delete_room(other_org.request(delete)).await);
    fault.assert_for_room(Code::NotFound, "notFound.room", &room.id);

    let fault = expect_fault(rooms.watch_room(other_org.request(watch)).await);
    fault.assert_for_room(Code::NotFound, "notFound.room", &room.id);

    assert_unchanged(&mut rooms, &room).await;
    assert!(find_all_rooms(&mut rooms, &other_org).await.is_empty());
}

#[tokio::test]
async fn missing_definition_is_not_found() {
    let node = TestNode::start().await;
    let mut definitions = node.definitions.clone();

    let get = service().request(GetRoomDefinitionRequest {});
    let fault = expect_fault(definitions.get_room_definition(get).await);
    fault.assert_is(Code::NotFound, "notFound.definition", &[("org", ORG)]);
}

// --- accessDenied -----------------------------------------------------------

#[tokio::test]
async fn account_without_entry_is_denied_read() {
    let (_node, mut rooms, room) = node_with_room().await;
    let stranger = Caller::account(ORG, "stranger");
    let list = ListParticipantsRequest {
        room_id: room.id.clone(),
    };

    let fault = expect_fault(
        rooms
            .get_room(stranger.request(get_request(&room.id)))
            .await,
    );
    fault.assert_for_room(Code::PermissionDenied, "accessDenied.read", &room.id);

    let join = join_request(&room.id, "");
    let fault = expect_fault(rooms.join_room(stranger.request(join)).await);
    fault.assert_for_room(Code::PermissionDenied, "accessDenied.read", &room.id);

    let fault = expect_fault(rooms.list_participants(stranger.request(list)).await);
    fault.assert_for_room(Code::PermissionDenied, "accessDenied.read", &room.id);

    // Without read access, even a change that needs more is denied read,
    // so the fault does not reveal what the caller could do.
    let close = close_request(&room.id);
    let fault = expect_fault(rooms.close_room(stranger.request(close)).await);
    fault.assert_for_room(Code::PermissionDenied, "accessDenied.read", &room.id);

    assert_unchanged(&mut rooms, &room).await;
    assert!(find_all_rooms(&mut rooms, &stranger).await.is_empty());
}

#[tokio::test]
async fn reader_changing_acl_is_denied_share() {
    let (_node, mut rooms, room) = node_with_room().await;
    let reader = Caller::account(ORG, "reader");

    for document in [
        r#"{"$push":{"acl":["account.friend.read"]}}"#,
        r#"{"$pull":{"acl":["account.reader.read"]}}"#,
    ] {
        let update = update_request(&room.id, document);
        let fault = expect_fault(rooms.update_room(reader.request(update)).await);
        fault.assert_for_room(Code::PermissionDenied, "accessDenied.share", &room.id);
    }

    assert_unchanged(&mut rooms, &room).await;
}

#[tokio::test]
async fn reader_updating_room_is_denied_update() {
    let (_node, mut rooms, room) = node_with_room().await;
    let reader = Caller::account(ORG, "reader");

    for document in [
        r#"{"$set":{"label":"Renamed"}}"#,
        r#"{"$set":{"c_number":3}}"#,
        r#"{"$set":{"configuration.maxParticipants":5}}"#,
        r#"{"$set":{"state":"closed"}}"#,
    ] {
        let update = update_request(&room.id, document);
        let fault = expect_fault(rooms.update_room(reader.request(update)).await);
        fault.assert_for_room(Code::PermissionDenied, "accessDenied.update", &room.id);
    }

    let close = close_request(&room.id);
    let fault = expect_fault(rooms.close_room(reader.request(close)).await);
    fault.assert_for_room(Code::PermissionDenied, "accessDenied.update", &room.id);

    // Joining someone else needs update as well.
    let join = join_request(&room.id, "friend");
    let fault = expect_fault(rooms.join_room(reader.request(join)).await);
    fault.assert_for_room(Code::PermissionDenied, "accessDenied.update", &room.id);

    assert_unchanged(&mut rooms, &room).await;
}

#[tokio::test]
async fn updater_deleting_room_is_denied_delete() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let room = node
        .create_room(&service(), open_room("Visit", &["account.editor.update"]))
        .await;
    let editor = Caller::account(ORG, "editor");

    let delete = delete_request(&room.id);
    let fault = expect_fault(rooms.delete_room(editor.request(delete)).await);
    fault.assert_for_room(Code::PermissionDenied, "accessDenied.delete", &room.id);

    assert_unchanged(&mut rooms, &room).await;
}

#[tokio::test]
async fn account_putting_definition_is_denied() {
    let node = TestNode::start().await;
    let mut definitions = node.definitions.clone();
    let put = PutRoomDefinitionRequest {
        definition: Some(RoomDefinition {
            org: ORG.to_owned(),
            label: "Visit".to_owned(),
            default_acl: Vec::new(),
            properties: vec![property("c_number", PropertyType::Number, true)],
            max_open_rooms: None,
        }),
    };

    let put = Caller::account(ORG, "acc1").request(put);
    let fault = expect_fault(definitions.put_room_definition(put).await);
    fault.assert_is(
        Code::PermissionDenied,
        "accessDenied.update",
        &[("org", ORG)],
    );

    let get = service().request(GetRoomDefinitionRequest {});
    let fault = expect_fault(definitions.get_room_definition(get).await);
    fault.assert_is(Code::NotFound, "notFound.definition", &[("org", ORG)]);
}

// --- unauthenticated --------------------------------------------------------

#[tokio::test]
async fn anonymous_create_is_unauthenticated() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let anonymous = Caller::account(ORG, "anonymous");

    let create = anonymous.request(open_room("Visit", &[]));
    let fault = expect_fault(rooms.create_room(create).await);
    fault.assert_is(Code::Unauthenticated, "unauthenticated", &[]);

    assert_room_ids(&mut rooms, &[]).await;
}

// --- invalidArgument.validation ---------------------------------------------

#[tokio::test]
async fn bad_room_id_is_invalid() {
    let (_node, mut rooms, room) = node_with_room().await;

    for bad_id in ["not-a-uuid", "", "01234567-89ab-cdef-0123-456789abcdeg"] {
        let fault = expect_fault(rooms.get_room(service().request(get_request(bad_id))).await);
        fault.assert_invalid("roomId");

        let update = update_request(bad_id, r#"{"$set":{"label":"x"}}"#);
        let fault = expect_fault(rooms.update_room(service().request(update)).await);
        fault.assert_invalid("roomId");

        let join = join_request(bad_id, "acc1");
        let fault = expect_fault(rooms.join_room(service().request(join)).await);
        fault.assert_invalid("roomId");

        let leave = leave_request(bad_id, "acc1");
        let fault = expect_fault(rooms.leave_room(service().request(leave)).await);
        fault.assert_invalid("roomId");

        let watch = WatchRoomRequest {
            room_id: bad_id.to_owned(),
            from_seq: 1,
        };
        let fault = expect_fault(rooms.watch_room(service().request(watch)).await);
        fault.assert_invalid("roomId");
    }

    assert_unchanged(&mut rooms, &room).await;
}

#[tokio::test]
async fn bad_label_is_invalid() {
    let (node, mut rooms, room) = node_with_room().await;
    let too_long = "x".repeat(201);

    for bad_label in ["", "   ", too_long.as_str(), "line\nbreak"] {
        let create = service().request(open_room(bad_label, &[]));
        let fault = expect_fault(rooms.create_room(create).await);
        fault.assert_invalid("label");

        let document = serde_json::json!({"$set": {"label": bad_label}}).to_string();
        let update = update_request(&room.id, &document);
        let fault = expect_fault(rooms.update_room(service().request(update)).await);
        fault.assert_invalid("label");
    }

    // 200 characters is the maximum, not above it.
    let longest = node
        .create_room(&service(), open_room(&"x".repeat(200), &[]))
        .await;

    assert_unchanged(&mut rooms, &room).await;
    assert_room_ids(&mut rooms, &[&room.id, &longest.id]).await;
}

#[tokio::test]
async fn bad_acl_entry_is_invalid() {
    let (node, mut rooms, room) = node_with_room().await;

    for bad_entry in [
        "account.acc1.owner",
        "group.staff.read",
        "account",
        "role.night shift.read",
        "owner.root",
    ] {
        let create = service().request(open_room("Visit", &["account.ok.read", bad_entry]));
        let fault = expect_fault(rooms.create_room(create).await);
        fault.assert_invalid("acl[1]");

        let document = serde_json::json!({"$push": {"acl": [bad_entry]}}).to_string();
        let update = update_request(&room.id, &document);
        let fault = expect_fault(rooms.update_room(service().request(update)).await);
        fault.assert_invalid("acl[0]");
    }

    // An account with share access may not grant more than share.
    let shared = node
        .create_room(&service(), open_room("Shared", &["account.sharer.share"]))
        .await;
    let grant = update_request(&shared.id, r#"{"$push":{"acl":["account.friend.update"]}}"#);
    let fault = expect_fault(
        rooms
            .update_room(Caller::account(ORG, "sharer").request(grant))
            .await,
    );
    fault.assert_invalid("acl");

    assert_unchanged(&mut rooms, &room).await;
    assert_unchanged(&mut rooms, &shared).await;
    assert_room_ids(&mut rooms, &[&room.id, &shared.id]).await;
}

#[tokio::test]
async fn bad_update_document_is_invalid() {
    let (_node, mut rooms, room) = node_with_room().await;

    let cases = [
        ("{not json", "update"),
        ("[]", "update"),
        ("{}", "update"),
        (r#"{"$inc":{"c_number":1}}"#, "$inc"),
        (r#"{"$set":[]}"#, "$set"),
        (r#"{"$set":{"version":9}}"#, "version"),
        (r#"{"$set":{"owner":"acc9"}}"#, "owner"),
        (r#"{"$set":{"label":5}}"#, "label"),
        (r#"{"$set":{"state":"reopened"}}"#, "state"),
        (r#"{"$unset":{"label":""}}"#, "label"),
        (r#"{"$push":{"label":"x"}}"#, "label"),
        (
            r#"{"$set":{"configuration.maxParticipants":1}}"#,
            "configuration.maxParticipants",
        ),
        (
            r#"{"$set":{"configuration.unusedTimeout":0}}"#,
            "configuration.unusedTimeout",
        ),
        (
            r#"{"$set":{"configuration.emptyTimeout":86401}}"#,
            "configuration.emptyTimeout",
        ),
        (r#"{"$set":{"c_number":"seven"}}"#, "c_number"),
        // A path named twice rejects the whole document.
        (r#"{"$set":{"label":"A"},"$unset":{"label":""}}"#, "label"),
        // One bad operation rejects the good one beside it.
        (r#"{"$set":{"label":"Fine","c_number":"bad"}}"#, "c_number"),
    ];
    for (document, path) in cases {
        let update = update_request(&room.id, document);
        let fault = expect_fault(rooms.update_room(service().request(update)).await);
        assert_eq!(fault.meta("path"), path, "path of the fault for {document}");
        fault.assert_invalid(path);
    }

    assert_unchanged(&mut rooms, &room).await;
}

#[tokio::test]
async fn unknown_property_is_invalid() {
    let (_node, mut rooms, room) = node_with_room().await;

    for document in [
        r#"{"$set":{"c_missing":1}}"#,
        r#"{"$unset":{"c_missing":""}}"#,
    ] {
        let update = update_request(&room.id, document);
        let fault = expect_fault(rooms.update_room(service().request(update)).await);
        fault.assert_invalid("c_missing");
    }

    let mut create = open_room("Visit", &[]);
    create.custom = Some(roomd_proto::convert::json_object_to_struct(
        &[("c_missing".to_owned(), serde_json::json!(1))].into(),
    ));
    let fault = expect_fault(rooms.create_room(service().request(create)).await);
    fault.assert_invalid("c_missing");

    assert_unchanged(&mut rooms, &room).await;
    assert_room_ids(&mut rooms, &[&room.id]).await;
}

#[tokio::test]
async fn bad_filter_is_invalid() {
    let (_node, mut rooms, room) = node_with_room().await;

    let cases = [
        ("{not json", "filter"),
        ("[1]", "filter"),
        (r#"{"label":"Visit"}"#, "label"),
        (r#"{"c_note":"x"}"#, "c_note"),
        (r#"{"c_missing":1}"#, "c_missing"),
        (r#"{"c_number":{"$regex":"7"}}"#, "c_number"),
        (r#"{"c_number":"seven"}"#, "c_number"),
        (r#"{"state":"ajar"}"#, "state"),
        (r#"{"$nor":[{"state":"open"}]}"#, "$nor"),
        (r#"{"$or":[]}"#, "$or"),
    ];
    for (filter, path) in cases {
        let find = FindRoomsRequest {
            filter_json: filter.to_owned(),
            ..FindRoomsRequest::default()
        };
        let fault = expect_fault(rooms.find_rooms(service().request(find)).await);
        assert_eq!(fault.meta("path"), path, "path of the fault for {filter}");
        fault.assert_invalid(path);
    }

    let find = FindRoomsRequest {
        page_token: "page-two".to_owned(),
        ..FindRoomsRequest::default()
    };
    let fault = expect_fault(rooms.find_rooms(service().request(find)).await);
    fault.assert_invalid("pageToken");

    assert_unchanged(&mut rooms, &room).await;
}

#[tokio::test]
async fn find_limit_above_max_is_invalid() {
    let (_node, mut rooms, room) = node_with_room().await;
    let find = |limit| FindRoomsRequest {
        limit,
        ..FindRoomsRequest::default()
    };

    let fault = expect_fault(rooms.find_rooms(service().request(find(1001))).await);
    fault.assert_invalid("limit");

    let largest = rooms
        .find_rooms(service().request(find(1000)))
        .await
        .expect("a limit of 1000 is allowed")
        .into_inner();
    assert_eq!(largest.rooms, [room]);
}

#[tokio::test]
async fn bad_metadata_is_invalid() {
    let (_node, mut rooms, room) = node_with_room().await;

    let cases = [
        (Caller::account(ORG, "a b"), "x-roomd-account"),
        (Caller::account(ORG, "public"), "x-roomd-account"),
        (Caller::service("bad org"), "x-roomd-org"),
        (Caller::service(ORG).with_roles(&["nurse"]), "x-roomd-roles"),
        (
            Caller::account(ORG, "reader").with_roles(&["night shift"]),
            "x-roomd-roles",
        ),
    ];
    for (caller, path) in cases {
        let fault = expect_fault(rooms.get_room(caller.request(get_request(&room.id))).await);
        fault.assert_invalid(path);

        let create = caller.request(open_room("Visit", &[]));
        let fault = expect_fault(rooms.create_room(create).await);
        fault.assert_invalid(path);

        let update = update_request(&room.id, r#"{"$set":{"label":"x"}}"#);
        let fault = expect_fault(rooms.update_room(caller.request(update)).await);
        fault.assert_invalid(path);
    }

    assert_unchanged(&mut rooms, &room).await;
    assert_room_ids(&mut rooms, &[&room.id]).await;
}

#[tokio::test]
async fn bad_configuration_is_invalid() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let input = RoomConfigurationInput::default;

    let cases = [
        (
            RoomConfigurationInput {
                max_participants: Some(1),
                ..input()
            },
            "configuration.maxParticipants",
        ),
        (
            RoomConfigurationInput {
                max_participants: Some(501),
                ..input()
            },
            "configuration.maxParticipants",
        ),
        (
            RoomConfigurationInput {
                unused_timeout: Some(0),
                ..input()
            },
            "configuration.unusedTimeout",
        ),
        (
            RoomConfigurationInput {
                empty_timeout: Some(86_401),
                ..input()
            },
            "configuration.emptyTimeout",
        ),
        (
            RoomConfigurationInput {
                max_duration: Some(0),
                ..input()
            },
            "configuration.maxDuration",
        ),
        (
            // Created open, but set to open an hour from now.
            RoomConfigurationInput {
                open_at: Some(in_an_hour()),
                ..input()
            },
            "configuration.openAt",
        ),
    ];
    for (configuration, path) in cases {
        let create = CreateRoomRequest {
            configuration: Some(configuration),
            ..open_room("Visit", &[])
        };
        let fault = expect_fault(rooms.create_room(service().request(create)).await);
        fault.assert_invalid(path);
    }

    assert_room_ids(&mut rooms, &[]).await;
}

// --- invalidState -----------------------------------------------------------

#[tokio::test]
async fn closed_room_rejects_changes() {
    let (_node, mut rooms, room) = node_with_room().await;
    let closed = close_room(&mut rooms, &service(), &room.id).await;
    assert_eq!(closed.state, RoomState::Closed as i32);

    for document in [
        r#"{"$set":{"state":"open"}}"#,
        r#"{"$set":{"label":"Again"}}"#,
    ] {
        let update = update_request(&room.id, document);
        let fault = expect_fault(rooms.update_room(service().request(update)).await);
        fault.assert_for_room(Code::FailedPrecondition, "invalidState.closed", &room.id);
    }

    let join = join_request(&room.id, "acc1");
    let fault = expect_fault(rooms.join_room(service().request(join)).await);
    fault.assert_for_room(Code::FailedPrecondition, "invalidState.closed", &room.id);

    let close = close_request(&room.id);
    let fault = expect_fault(rooms.close_room(service().request(close)).await);
    fault.assert_for_room(Code::FailedPrecondition, "invalidState.closed", &room.id);

    assert_unchanged(&mut rooms, &closed).await;
}

#[tokio::test]
async fn room_before_open_at_rejects_join() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let create = CreateRoomRequest {
        label: "Later".to_owned(),
        configuration: Some(RoomConfigurationInput {
            open_at: Some(in_an_hour()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let room = node.create_room(&service(), create).await;
    assert_eq!(room.state, RoomState::New as i32);

    let join = join_request(&room.id, "acc1");
    let fault = expect_fault(rooms.join_room(service().request(join)).await);
    fault.assert_for_room(Code::FailedPrecondition, "invalidState.notOpen", &room.id);

    let leave = leave_request(&room.id, "acc1");
    let fault = expect_fault(rooms.leave_room(service().request(leave)).await);
    fault.assert_for_room(Code::FailedPrecondition, "invalidState.notOpen", &room.id);

    assert_unchanged(&mut rooms, &room).await;
}

#[tokio::test]
async fn setting_state_other_than_closed_is_transition() {
    let (_node, mut rooms, room) = node_with_room().await;

    for target in ["new", "open"] {
        let document = serde_json::json!({"$set": {"state": target}}).to_string();
        let update = update_request(&room.id, &document);
        let fault = expect_fault(rooms.update_room(service().request(update)).await);
        fault.assert_for_room(
            Code::FailedPrecondition,
            "invalidState.transition",
            &room.id,
        );
    }

    assert_unchanged(&mut rooms, &room).await;
}

// --- limit and conflict -----------------------------------------------------

#[tokio::test]
async fn full_room_rejects_join() {
    let node = TestNode::start().await;
    let mut rooms = node.rooms.clone();
    let create = open_room_with_max("Visit", &["account.public.read"], 3);
    let room = node.create_room(&service(), create).await;
    for account in ["acc1", "acc2", "acc3"] {
        join_room(&mut rooms, &Caller::account(ORG, account), &room.id).await;
    }
    let full = get_room(&mut rooms, &service(), &room.id).await;

    let join = Caller::account(ORG, "acc4").request(join_request(&room.id, ""));
    let fault = expect_fault(rooms.join_room(join).await);
    fault.assert_is(
        Code::ResourceExhausted,
        "limit.maxParticipants",
        &[("roomId", &room.id), ("max", "3")],
    );

    // Nor may the maximum drop below the participants connected.
    let update = update_request(&room.id, r#"{"$set":{"configuration.maxParticipants":2}}"#);
    let fault = expect_fault(rooms.update_room(service().request(update)).await);
    fault.assert_invalid("configuration.maxParticipants");

    assert_unchanged(&mut rooms, &full).await;
}

#[tokio::test]
async fn stale_expected_version_is_conflict() {
    let (_node, mut rooms, room) = node_with_room().await;
    let rename = |expected_version| UpdateRoomRequest {
        expected_version: Some(expected_version),
        ..update_request(&room.id, r#"{"$set":{"label":"Renamed"}}"#)
    };

    for stale in [room.version - 1, room.version + 1] {
        let fault = expect_fault(rooms.update_room(service().request(rename(stale))).await);
        fault.assert_is(
            Code::Aborted,
            "conflict.version",
            &[("roomId", &room.id), ("version", &room.version.to_string())],
        );
    }
    assert_unchanged(&mut rooms, &room).await;

    let renamed = rooms
        .update_room(service().request(rename(room.version)))
        .await
        .expect("the update at the current version applies")
        .into_inner();
    assert_eq!(renamed.version, room.version + 1);
    assert_eq!(renamed.label, "Renamed");
}

#[tokio::test]
async fn truncated_frame_is_invalid_request() {
    let (node, mut rooms, room) = node_with_room().await;

    // A gRPC frame header announcing 20 bytes, followed by only 4 of them.
    let frame = "\0\0\0\0\x14\x0a\x02ab".to_owned();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{}/roomd.v1.Rooms/GetRoom", node.address))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-roomd-org", ORG)
        .body(Body::new(frame))
        .expect("the request is well formed");
    let mut channel = node.channel();
    std::future::poll_fn(|context| channel.poll_ready(context))
        .await
        .expect("roomd accepts the connection");
    let response = channel.call(request).await.expect("roomd responds");

    let status = Status::from_header_map(response.headers()).expect("the response is a fault");
    Fault::from_status(&status).assert_invalid("request");
    assert_unchanged(&mut rooms, &room).await;
}
