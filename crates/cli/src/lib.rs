//! `roomctl`, the command-line client of roomd.
//!
//! - [`Cli`]: the subcommands and flags, a contract that scripts rely on.
//! - [`run`]: connects, sends one request (or follows a watch), prints JSON.
//! - [`CliError`]: what went wrong, with the fault reason roomd returned.
//!
//! Rooms print as one JSON object with the API's field names (`_id`,
//! `state`, `closeReason`, custom `c_*` values at the top level). `find`
//! prints a JSON array and `watch` one JSON event per line.

mod args;
mod client;
mod error;

use roomd_proto::convert;
use roomd_proto::v1::{
    CloseRoomRequest, CreateRoomRequest, DeleteRoomRequest, FindRoomsRequest,
    GetRoomDefinitionRequest, GetRoomRequest, JoinRoomRequest, LeaveRoomRequest,
    ListParticipantsRequest, PutRoomDefinitionRequest, Room, RoomConfigurationInput,
    RoomDefinition, SortField, UpdateRoomRequest, WatchRoomRequest,
};
use serde_json::Value;

pub use args::{Cli, Command};
pub use error::CliError;

use client::Client;

/// Runs one command and prints its result on stdout.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let client = Client::connect(&cli).await?;
    match cli.command {
        Command::Define(define) => {
            let properties = define
                .property
                .iter()
                .map(|spec| args::parse_property(spec))
                .collect::<Result<Vec<_>, _>>()?;
            let definition = RoomDefinition {
                org: String::new(),
                label: define.label,
                default_acl: define.default_acl,
                properties,
                max_open_rooms: define.max_open_rooms,
            };
            let stored = client
                .definitions()
                .put_room_definition(client.request(PutRoomDefinitionRequest {
                    definition: Some(definition),
                })?)
                .await?
                .into_inner();
            print_json(&definition_json(&stored));
        }
        Command::Definition => {
            let stored = client
                .definitions()
                .get_room_definition(client.request(GetRoomDefinitionRequest {})?)
                .await?
                .into_inner();
            print_json(&definition_json(&stored));
        }
        Command::Create(create) => {
            let custom = create
                .set
                .iter()
                .map(|assignment| args::parse_assignment(assignment))
                .collect::<Result<_, _>>()?;
            let open_at = create
                .open_at
                .as_deref()
                .map(args::parse_time)
                .transpose()?
                .map(|at| convert::timestamp(&at));
            let request = CreateRoomRequest {
                label: create.label,
                acl: create.acl,
                owner: create.owner.unwrap_or_default(),
                custom: Some(convert::json_object_to_struct(&custom)),
                configuration: Some(RoomConfigurationInput {
                    max_participants: create.max_participants,
                    unused_timeout: create.unused_timeout,
                    empty_timeout: create.empty_timeout,
                    max_duration: create.max_duration,
                    open_at,
                }),
                open: create.open,
                request_id: create.request_id.unwrap_or_default(),
            };
            let room = client.rooms().create_room(client.request(request)?).await?;
            print_room(&room.into_inner())?;
        }
        Command::Get { room_id } => {
            let room = client
                .rooms()
                .get_room(client.request(GetRoomRequest { room_id })?)
                .await?;
            print_room(&room.into_inner())?;
        }
        Command::Find(find) => {
            let sort = find
                .sort
                .iter()
                .map(|spec| args::parse_sort(spec))
                .collect::<Result<Vec<SortField>, _>>()?;
            let response = client
                .rooms()
                .find_rooms(client.request(FindRoomsRequest {
                    filter_json: find.filter.unwrap_or_default(),
                    sort,
                    limit: find.limit,
                    page_token: find.page_token.unwrap_or_default(),
                })?)
                .await?
                .into_inner();
            if !response.next_page_token.is_empty() {
                eprintln!(
                    "more rooms match; next page: --page-token {}",
                    response.next_page_token
                );
            }
            let rooms = response
                .rooms
                .iter()
                .map(room_json)
                .collect::<Result<Vec<_>, _>>()?;
            print_json(&Value::Array(rooms));
        }
        Command::Update {
            room_id,
            update,
            expected_version,
        } => {
            let room = client
                .rooms()
                .update_room(client.request(UpdateRoomRequest {
                    room_id,
                    update_json: update,
                    expected_version,
                })?)
                .await?;
            print_room(&room.into_inner())?;
        }
        Command::Close { room_id } => {
            let room = client
                .rooms()
                .close_room(client.request(CloseRoomRequest { room_id })?)
                .await?;
            print_room(&room.into_inner())?;
        }
        Command::Delete { room_id } => {
            let response = client
                .rooms()
                .delete_room(client.request(DeleteRoomRequest { room_id })?)
                .await?
                .into_inner();
            if let Some(room) = response.room {
                print_room(&room)?;
            }
        }
        Command::Join { room_id, account } => {
            let room = client
                .rooms()
                .join_room(client.request(JoinRoomRequest {
                    room_id,
                    account: account.unwrap_or_default(),
                })?)
                .await?;
            print_room(&room.into_inner())?;
        }
        Command::Leave { room_id, account } => {
            let room = client
                .rooms()
                .leave_room(client.request(LeaveRoomRequest {
                    room_id,
                    account: account.unwrap_or_default(),
                })?)
                .await?;
            print_room(&room.into_inner())?;
        }
        Command::Participants { room_id } => {
            let response = client
                .rooms()
                .list_participants(client.request(ListParticipantsRequest { room_id })?)
                .await?
                .into_inner();
            let participants = response
                .participants
                .iter()
                .map(|p| convert::from_participant(p).map_err(CliError::Response))
                .collect::<Result<Vec<_>, _>>()?;
            print_json(&serde_json::to_value(participants).expect("participants serialize"));
        }
        Command::Watch { room_id, from_seq } => {
            let mut stream = client
                .rooms()
                .watch_room(client.watch_request(WatchRoomRequest { room_id, from_seq })?)
                .await?
                .into_inner();
            while let Some(event) = stream.message().await? {
                let event = convert::from_event(&event).map_err(CliError::Response)?;
                let line = serde_json::to_string(&event).expect("events serialize");
                if !write_stdout(&line) {
                    break;
                }
            }
        }
    }
    Ok(())
}

fn room_json(room: &Room) -> Result<Value, CliError> {
    let room = convert::from_room(room).map_err(CliError::Response)?;
    Ok(serde_json::to_value(room).expect("rooms serialize"))
}

fn print_room(room: &Room) -> Result<(), CliError> {
    print_json(&room_json(room)?);
    Ok(())
}

fn definition_json(definition: &RoomDefinition) -> Value {
    let properties: Vec<Value> = definition
        .properties
        .iter()
        .map(|p| {
            let kind = roomd_proto::v1::PropertyType::try_from(p.r#type)
                .map(|t| {
                    t.as_str_name()
                        .trim_start_matches("PROPERTY_TYPE_")
                        .to_owned()
                })
                .unwrap_or_default();
            serde_json::json!({
                "name": p.name,
                "label": p.label,
                "type": capitalize(&kind),
                "array": p.array,
                "indexed": p.indexed,
            })
        })
        .collect();
    let mut json = serde_json::json!({
        "org": definition.org,
        "label": definition.label,
        "defaultAcl": definition.default_acl,
        "properties": properties,
    });
    if let Some(max) = definition.max_open_rooms {
        json["maxOpenRooms"] = max.into();
    }
    json
}

fn capitalize(upper: &str) -> String {
    let lower = upper.to_ascii_lowercase();
    let mut chars = lower.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn print_json(value: &Value) {
    write_stdout(&serde_json::to_string_pretty(value).expect("JSON values serialize"));
}

/// Writes one line to stdout. Returns `false` when stdout no longer takes
/// output, as when the reader of a pipe exits early (`roomctl watch | head`):
/// that ends the output quietly instead of panicking as `println!` would.
fn write_stdout(line: &str) -> bool {
    use std::io::Write;

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_ok()
}
