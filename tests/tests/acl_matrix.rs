//! The ACL matrix: every room operation, for a principal matched by each
//! kind of ACL entry, at each access level, through the gRPC API of one
//! real `roomd` process.
//!
//! Each cell gets a room of its own. Its ACL contains the entry under test,
//! an entry for an unrelated account, and the org's default entry for a
//! role that no principal here has. An operation needs `read` (get, find,
//! watch, list participants, join and leave oneself), `share` (ACL
//! changes), `update` (label, custom property, configuration, close) or
//! `delete`. A cell below that level gets `accessDenied.<level>`, or
//! `accessDenied.read` when the principal cannot even read the room, and
//! the room stays unchanged. An ACL entry may not grant more than the
//! caller's own level.

use std::fmt;
use std::sync::Arc;

use prost_types::value::Kind;
use roomd_proto::v1::definitions_client::DefinitionsClient;
use roomd_proto::v1::rooms_client::RoomsClient;
use roomd_proto::v1::{
    CreateRoomRequest, FindRoomsRequest, ListParticipantsRequest, ParticipantStatus, PropertyType,
    PutRoomDefinitionRequest, Room, RoomDefinition, RoomState, WatchRoomRequest,
};
use roomd_tests::{
    Caller, Fault, RoomdProcess, close_request, connect, delete_request, get_request, join_request,
    leave_request, property, update_request,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tonic::transport::Channel;
use tonic::{Code, Status};

const ORG: &str = "matrix";
const OWNER: &str = "olivia";
/// An account that no principal of the matrix acts as; its entry is what
/// the ACL changes push and pull.
const BYSTANDER: &str = "zed";
/// Cells run at once.
const CONCURRENCY: usize = 16;

/// Access levels, lowest first, as ACL entries spell them.
const LEVELS: [&str; 7] = [
    "public",
    "connected",
    "reserved",
    "read",
    "share",
    "update",
    "delete",
];
const READ: usize = 3;
const SHARE: usize = 4;
const UPDATE: usize = 5;
const DELETE: usize = 6;

/// A kind of ACL entry and a principal that only such an entry matches.
#[derive(Debug, Clone, Copy)]
enum EntryType {
    Account,
    Public,
    /// `account.anonymous.*` matched by a caller that is not signed in.
    Anonymous,
    /// `account.anonymous.*` matched by a signed-in account.
    AnonymousSignedIn,
    Role,
    Owner,
}

impl EntryType {
    const ALL: [EntryType; 6] = [
        EntryType::Account,
        EntryType::Public,
        EntryType::Anonymous,
        EntryType::AnonymousSignedIn,
        EntryType::Role,
        EntryType::Owner,
    ];

    fn entry(self, level: &str) -> String {
        match self {
            EntryType::Account => format!("account.alice.{level}"),
            EntryType::Public => format!("account.public.{level}"),
            EntryType::Anonymous | EntryType::AnonymousSignedIn => {
                format!("account.anonymous.{level}")
            }
            EntryType::Role => format!("role.nurse.{level}"),
            EntryType::Owner => format!("owner.{level}"),
        }
    }

    /// Returns the acting account, or `None` for a caller not signed in.
    fn account(self) -> Option<&'static str> {
        match self {
            EntryType::Account => Some("alice"),
            EntryType::Public => Some("bob"),
            EntryType::Anonymous => None,
            EntryType::AnonymousSignedIn => Some("dave"),
            EntryType::Role => Some("carol"),
            EntryType::Owner => Some(OWNER),
        }
    }

    fn caller(self) -> Caller {
        match self {
            EntryType::Anonymous => Caller::account(ORG, "anonymous"),
            EntryType::Role => Caller::account(ORG, "carol").with_roles(&["nurse"]),
            other => Caller::account(ORG, other.account().unwrap_or_default()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Get,
    Find,
    Watch,
    ListParticipants,
    Join,
    Leave,
    /// Push an entry at the caller's own level.
    AclPush,
    AclPull,
    /// Push an entry one level above the caller's own.
    AclPushAbove,
    UpdateLabel,
    UpdateCustom,
    UpdateConfiguration,
    Close,
    Delete,
}

impl Operation {
    const ALL: [Operation; 14] = [
        Operation::Get,
        Operation::Find,
        Operation::Watch,
        Operation::ListParticipants,
        Operation::Join,
        Operation::Leave,
        Operation::AclPush,
        Operation::AclPull,
        Operation::AclPushAbove,
        Operation::UpdateLabel,
        Operation::UpdateCustom,
        Operation::UpdateConfiguration,
        Operation::Close,
        Operation::Delete,
    ];

    /// Returns the index in [`LEVELS`] of the level the operation needs.
    fn required(self) -> usize {
        match self {
            Operation::Get
            | Operation::Find
            | Operation::Watch
            | Operation::ListParticipants
            | Operation::Join
            | Operation::Leave => READ,
            Operation::AclPush | Operation::AclPull | Operation::AclPushAbove => SHARE,
            Operation::UpdateLabel
            | Operation::UpdateCustom
            | Operation::UpdateConfiguration
            | Operation::Close => UPDATE,
            Operation::Delete => DELETE,
        }
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone, Copy)]
struct Cell {
    number: usize,
    entry_type: EntryType,
    level: usize,
    operation: Operation,
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} entry at {} × {:?}",
            self.entry_type, LEVELS[self.level], self.operation
        )
    }
}

/// What a call did, as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Allowed,
    /// `FindRooms` succeeded without the room.
    Hidden,
    Fault {
        reason: String,
        path: String,
    },
}

impl Outcome {
    fn fault(reason: &str, path: &str) -> Self {
        Outcome::Fault {
            reason: reason.to_owned(),
            path: path.to_owned(),
        }
    }

    fn from_status(status: &Status) -> Self {
        let fault = Fault::from_status(status);
        Outcome::Fault {
            path: fault.meta("path").to_owned(),
            reason: fault.reason,
        }
    }
}

impl Cell {
    /// Builds every cell: entry type × level × operation. Pushing above the
    /// caller's level does not exist at `delete`, the highest one.
    fn all() -> Vec<Cell> {
        let mut cells = Vec::new();
        for entry_type in EntryType::ALL {
            for level in 0..LEVELS.len() {
                for operation in Operation::ALL {
                    if operation == Operation::AclPushAbove && level == DELETE {
                        continue;
                    }
                    cells.push(Cell {
                        number: cells.len(),
                        entry_type,
                        level,
                        operation,
                    });
                }
            }
        }
        cells
    }

    fn expected(&self) -> Outcome {
        let required = self.operation.required();
        if self.level < required {
            if self.operation == Operation::Find {
                return Outcome::Hidden;
            }
            let denied = if self.level >= READ {
                LEVELS[required]
            } else {
                LEVELS[READ]
            };
            return Outcome::fault(&format!("accessDenied.{denied}"), "");
        }
        let self_participation = matches!(self.operation, Operation::Join | Operation::Leave);
        if self_participation && self.entry_type.account().is_none() {
            // A caller that is not signed in has no account to join as.
            return Outcome::fault("invalidArgument.validation", "account");
        }
        if self.operation == Operation::AclPushAbove {
            return Outcome::fault("invalidArgument.validation", "acl");
        }
        Outcome::Allowed
    }

    fn pushed_entry(&self) -> String {
        let level = match self.operation {
            Operation::AclPushAbove => self.level + 1,
            _ => self.level,
        };
        format!("account.{BYSTANDER}.{}", LEVELS[level])
    }

    fn update_document(&self) -> Option<String> {
        let document = match self.operation {
            Operation::AclPush | Operation::AclPushAbove => {
                format!(r#"{{"$push": {{"acl": "{}"}}}}"#, self.pushed_entry())
            }
            Operation::AclPull => {
                format!(r#"{{"$pull": {{"acl": "account.{BYSTANDER}.read"}}}}"#)
            }
            Operation::UpdateLabel => r#"{"$set": {"label": "Changed"}}"#.to_owned(),
            Operation::UpdateCustom => r#"{"$set": {"c_note": "changed"}}"#.to_owned(),
            Operation::UpdateConfiguration => {
                r#"{"$set": {"configuration.emptyTimeout": 120}}"#.to_owned()
            }
            _ => return None,
        };
        Some(document)
    }
}

fn number_value(number: usize) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::NumberValue(number as f64)),
    }
}

async fn put_matrix_definition(definitions: &mut DefinitionsClient<Channel>) {
    let definition = RoomDefinition {
        org: ORG.to_owned(),
        label: "Visit".to_owned(),
        default_acl: vec!["role.matrix-admin.delete".to_owned()],
        properties: vec![
            property("c_case", PropertyType::Number, true),
            property("c_note", PropertyType::String, false),
        ],
        max_open_rooms: None,
    };
    definitions
        .put_room_definition(Caller::service(ORG).request(PutRoomDefinitionRequest {
            definition: Some(definition),
        }))
        .await
        .expect("store the matrix org's definition");
}

/// Creates the cell's open room, owned by [`OWNER`]. For a leave, the
/// calling service first joins the cell's principal.
async fn prepare_room(rooms: &mut RoomsClient<Channel>, cell: &Cell) -> Result<Room, String> {
    let service = Caller::service(ORG);
    let request = CreateRoomRequest {
        label: format!("Cell {}", cell.number),
        acl: vec![
            cell.entry_type.entry(LEVELS[cell.level]),
            format!("account.{BYSTANDER}.read"),
        ],
        owner: OWNER.to_owned(),
        custom: Some(prost_types::Struct {
            fields: [("c_case".to_owned(), number_value(cell.number))].into(),
        }),
        open: true,
        ..CreateRoomRequest::default()
    };
    let mut room = rooms
        .create_room(service.request(request))
        .await
        .map_err(|status| format!("create failed: {status:?}"))?
        .into_inner();
    if let (Operation::Leave, Some(account)) = (cell.operation, cell.entry_type.account()) {
        room = rooms
            .join_room(service.request(join_request(&room.id, account)))
            .await
            .map_err(|status| format!("joining {account} failed: {status:?}"))?
            .into_inner();
    }
    Ok(room)
}

/// Calls the cell's operation as the cell's principal.
async fn perform(rooms: &mut RoomsClient<Channel>, cell: &Cell, room: &Room) -> Outcome {
    let caller = cell.entry_type.caller();
    let id = room.id.as_str();
    let result: Result<(), Status> = match cell.operation {
        Operation::Get => rooms
            .get_room(caller.request(get_request(id)))
            .await
            .map(drop),
        Operation::Find => {
            let request = caller.request(FindRoomsRequest {
                filter_json: format!(r#"{{"c_case": {}}}"#, cell.number),
                ..FindRoomsRequest::default()
            });
            return match rooms.find_rooms(request).await {
                Ok(page) if page.get_ref().rooms.iter().any(|found| found.id == id) => {
                    Outcome::Allowed
                }
                Ok(_) => Outcome::Hidden,
                Err(status) => Outcome::from_status(&status),
            };
        }
        Operation::Watch => {
            let request = caller.request(WatchRoomRequest {
                room_id: id.to_owned(),
                from_seq: 1,
            });
            match rooms.watch_room(request).await {
                Ok(stream) => match stream.into_inner().message().await {
                    Ok(Some(event)) if event.name == "room.created" => Ok(()),
                    Ok(other) => Err(Status::internal(format!("first event: {other:?}"))),
                    Err(status) => Err(status),
                },
                Err(status) => Err(status),
            }
        }
        Operation::ListParticipants => rooms
            .list_participants(caller.request(ListParticipantsRequest {
                room_id: id.to_owned(),
            }))
            .await
            .map(drop),
        Operation::Join => rooms
            .join_room(caller.request(join_request(id, "")))
            .await
            .map(drop),
        Operation::Leave => rooms
            .leave_room(caller.request(leave_request(id, "")))
            .await
            .map(drop),
        Operation::Close => rooms
            .close_room(caller.request(close_request(id)))
            .await
            .map(drop),
        Operation::Delete => rooms
            .delete_room(caller.request(delete_request(id)))
            .await
            .map(drop),
        _ => {
            let document = cell.update_document().unwrap_or_default();
            rooms
                .update_room(caller.request(update_request(id, &document)))
                .await
                .map(drop)
        }
    };
    match result {
        Ok(()) => Outcome::Allowed,
        Err(status) if status.code() == Code::Internal => Outcome::fault(status.message(), ""),
        Err(status) => Outcome::from_status(&status),
    }
}

fn participant_status(room: &Room, account: &str) -> Option<ParticipantStatus> {
    room.participants
        .iter()
        .find(|participant| participant.account == account)
        .map(|participant| participant.status())
}

/// Checks that an allowed change took effect; returns what is wrong.
fn check_effect(cell: &Cell, before: &Room, after: Option<&Room>) -> Result<(), String> {
    let Some(after) = after else {
        return if cell.operation == Operation::Delete {
            Ok(())
        } else {
            Err("the room is gone".to_owned())
        };
    };
    let account = cell.entry_type.account().unwrap_or_default();
    let took_effect = match cell.operation {
        Operation::Get | Operation::Find | Operation::Watch | Operation::ListParticipants => {
            after == before
        }
        Operation::Join => participant_status(after, account) == Some(ParticipantStatus::Connected),
        Operation::Leave => {
            participant_status(after, account) == Some(ParticipantStatus::Disconnected)
        }
        Operation::AclPush => after.acl.contains(&cell.pushed_entry()),
        Operation::AclPull => !after.acl.contains(&format!("account.{BYSTANDER}.read")),
        Operation::UpdateLabel => after.label == "Changed",
        Operation::UpdateCustom => after
            .custom
            .as_ref()
            .is_some_and(|custom| custom.fields.contains_key("c_note")),
        Operation::UpdateConfiguration => after
            .configuration
            .as_ref()
            .is_some_and(|configuration| configuration.empty_timeout == 120),
        Operation::Close => after.state() == RoomState::Closed,
        Operation::Delete | Operation::AclPushAbove => false,
    };
    if took_effect {
        Ok(())
    } else {
        Err(format!("the change did not take effect: {after:?}"))
    }
}

/// Reads the room as the calling service; `None` once it was deleted.
async fn stored_room(rooms: &mut RoomsClient<Channel>, id: &str) -> Result<Option<Room>, String> {
    match rooms
        .get_room(Caller::service(ORG).request(get_request(id)))
        .await
    {
        Ok(room) => Ok(Some(room.into_inner())),
        Err(status) if status.code() == Code::NotFound => Ok(None),
        Err(status) => Err(format!("reading the room back failed: {status:?}")),
    }
}

/// Runs one cell; returns why it failed.
async fn run_cell(mut rooms: RoomsClient<Channel>, cell: Cell) -> Result<(), String> {
    let before = prepare_room(&mut rooms, &cell).await?;
    let expected = cell.expected();
    let observed = perform(&mut rooms, &cell, &before).await;
    if observed != expected {
        return Err(format!("expected {expected:?}, observed {observed:?}"));
    }

    let after = stored_room(&mut rooms, &before.id).await?;
    if expected == Outcome::Allowed {
        return check_effect(&cell, &before, after.as_ref());
    }
    if after.as_ref() != Some(&before) {
        return Err(format!(
            "a rejected request changed the room: {after:?}, was {before:?}"
        ));
    }
    Ok(())
}

#[tokio::test]
async fn acl_matrix_over_grpc() {
    // Setting up and checking each cell takes several requests as the
    // calling service, far beyond the default rate of one caller.
    let process =
        RoomdProcess::spawn(&["--rate-limit", "1000000", "--rate-burst", "1000000"]).await;
    let channel = connect(process.address).await;
    put_matrix_definition(&mut DefinitionsClient::new(channel.clone())).await;
    let rooms = RoomsClient::new(channel);

    let cells = Cell::all();
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut running = JoinSet::new();
    for cell in cells.iter().copied() {
        let rooms = rooms.clone();
        let permits = permits.clone();
        running.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore is open");
            run_cell(rooms, cell)
                .await
                .map_err(|reason| format!("{cell}: {reason}"))
        });
    }

    let mut failures = Vec::new();
    while let Some(result) = running.join_next().await {
        if let Err(failure) = result.expect("a cell task panicked") {
            failures.push(failure);
        }
    }
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {} cells failed:\n{}",
        failures.len(),
        cells.len(),
        failures.join("\n")
    );
}
