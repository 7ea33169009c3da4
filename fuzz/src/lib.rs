//! Shared parts of roomd's fuzz targets: a JSON generator that favours the
//! words the model parses (operators, paths, ACL entries, dates), a sample
//! room definition, sample rooms and principals, and the invariants that
//! every room the model accepts must keep. Every target applies [`limits`].
//!
//! Each target reads its first input byte as a mode: even bytes feed the
//! rest of the input to the parser as text, odd bytes build a structured
//! input with [`arbitrary::Unstructured`]. Text mode exercises the JSON
//! parser itself; structured mode reaches deep into the model quickly.

use std::collections::HashSet;

use arbitrary::{Result, Unstructured};
use chrono::{DateTime, Duration, Utc};
use roomd_model::definition::{PropertyDefinition, PropertyType};
use roomd_model::room::{MAX_PARTICIPANTS, MAX_TIMEOUT_SECS, MIN_PARTICIPANTS};
use roomd_model::{
    ConfigurationInput, Limits, NewRoom, Principal, Room, RoomDefaults, RoomDefinition, RoomId,
    RoomState, validate,
};
use serde_json::{Map, Number, Value};

/// Maximum depth of the arrays and objects that [`json_value`] generates.
pub const MAX_JSON_DEPTH: u32 = 4;
/// Maximum items in one array or object that [`json_value`] generates.
const MAX_JSON_ITEMS: usize = 6;

/// Returns the time that every sample room and update uses as `now`.
pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .map(|at| at.with_timezone(&Utc))
        .unwrap_or_default()
}

/// Returns the limits that every target applies: the production defaults,
/// so that the targets check what a node with default flags accepts.
pub fn limits() -> Limits {
    Limits::default()
}

/// Splits a fuzz input into its mode and the rest: `Some(text)` for text
/// mode, `None` for structured mode (the rest is then read with
/// [`Unstructured`]).
pub fn text_mode(data: &[u8]) -> Option<&str> {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => std::str::from_utf8(rest).ok(),
        _ => None,
    }
}

/// Returns one of `words`, or an arbitrary string now and then.
pub fn word(u: &mut Unstructured, words: &[&str]) -> Result<String> {
    if words.is_empty() || u.ratio(1, 8)? {
        return u.arbitrary();
    }
    Ok((*u.choose(words)?).to_owned())
}

/// Words the model gives meaning to, used as object keys and strings.
pub const WORDS: &[&str] = &[
    "$set",
    "$unset",
    "$push",
    "$pull",
    "$and",
    "$or",
    "$eq",
    "$ne",
    "$in",
    "$nin",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "label",
    "state",
    "acl",
    "owner",
    "created",
    "configuration",
    "configuration.maxParticipants",
    "configuration.unusedTimeout",
    "configuration.emptyTimeout",
    "configuration.maxDuration",
    "configuration.openAt",
    "maxParticipants",
    "unusedTimeout",
    "emptyTimeout",
    "maxDuration",
    "openAt",
    "c_text",
    "c_number",
    "c_flag",
    "c_date",
    "c_tags",
    "c_dates",
    "c_note",
    "c_unknown",
    "new",
    "open",
    "closed",
    "owner1",
    "acc2",
    "account.acc2.read",
    "account.acc3.delete",
    "account.public.read",
    "account.anonymous.connected",
    "role.staff.share",
    "role.staff.update",
    "owner.delete",
    "owner.read",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:10:00+01:00",
    "2030-06-30T12:00:00.5Z",
    "0000-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "",
    " ",
    "tag",
];

/// Generates a JSON value up to `depth` levels deep, with keys and strings
/// drawn mostly from [`WORDS`].
pub fn json_value(u: &mut Unstructured, depth: u32) -> Result<Value> {
    let kinds = if depth == 0 { 6 } else { 8 };
    let value = match u.choose_index(kinds)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.int_in_range(-2_i64..=600)?),
        3 => json_number(u)?,
        4 | 5 => Value::String(word(u, WORDS)?),
        6 => {
            let len = u.int_in_range(0..=MAX_JSON_ITEMS)?;
            let items = (0..len)
                .map(|_| json_value(u, depth - 1))
                .collect::<Result<Vec<_>>>()?;
            Value::Array(items)
        }
        _ => {
            let len = u.int_in_range(0..=MAX_JSON_ITEMS)?;
            let mut map = Map::new();
            for _ in 0..len {
                map.insert(word(u, WORDS)?, json_value(u, depth - 1)?);
            }
            Value::Object(map)
        }
    };
    Ok(value)
}

/// Generates a value of the shape update paths and filters take: a word,
/// a list of words, a small number, or else any JSON value.
pub fn field_value(u: &mut Unstructured, depth: u32) -> Result<Value> {
    let value = match u.choose_index(4)? {
        0 => Value::String(word(u, WORDS)?),
        1 => {
            let len = u.int_in_range(1..=MAX_JSON_ITEMS)?;
            let items = (0..len)
                .map(|_| word(u, WORDS).map(Value::String))
                .collect::<Result<Vec<_>>>()?;
            Value::Array(items)
        }
        2 => Value::from(u.int_in_range(-2_i64..=600)?),
        _ => json_value(u, depth)?,
    };
    Ok(value)
}

/// Generates any JSON number: a whole number of any size or a finite float.
fn json_number(u: &mut Unstructured) -> Result<Value> {
    let value = match u.choose_index(3)? {
        0 => Value::from(u.arbitrary::<i64>()?),
        1 => Value::from(u.arbitrary::<u64>()?),
        _ => Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
    };
    Ok(value)
}

fn property(name: &str, kind: PropertyType, array: bool, indexed: bool) -> PropertyDefinition {
    PropertyDefinition {
        name: name.to_owned(),
        label: name.to_owned(),
        kind,
        array,
        indexed,
    }
}

/// Returns the definition the targets check against: one property of each
/// type, two arrays, and one property that is not indexed.
pub fn definition() -> RoomDefinition {
    let properties = vec![
        property("c_text", PropertyType::String, false, true),
        property("c_number", PropertyType::Number, false, true),
        property("c_flag", PropertyType::Boolean, false, true),
        property("c_date", PropertyType::Date, false, true),
        property("c_tags", PropertyType::String, true, true),
        property("c_dates", PropertyType::Date, true, false),
        property("c_note", PropertyType::String, false, false),
    ];
    let acl = ["owner.delete".to_owned(), "role.staff.share".to_owned()];
    match RoomDefinition::new("org1", "Room", &acl, properties) {
        Ok(definition) => definition,
        Err(error) => panic!("the sample definition is invalid: {error}"),
    }
}

/// Returns the principals that updates are applied for: the service, the
/// owner, an account with `read`, a role with `share`, and an anonymous
/// caller.
pub fn principals() -> Vec<Principal> {
    vec![
        Principal::Service,
        Principal::account("owner1"),
        Principal::account("acc2"),
        Principal::Account {
            id: "acc9".to_owned(),
            roles: vec!["staff".to_owned()],
        },
        Principal::Anonymous { roles: Vec::new() },
    ]
}

/// Builds the sample rooms within [`limits`]: a `new` room waiting for its
/// `openAt`, an open room with participants and custom values, an open room
/// whose `c_tags` array is one short of the maximum, and a closed room.
pub fn rooms() -> Vec<Room> {
    let definition = definition();
    let limits = limits();
    let owner = Principal::account("owner1");
    let create = |request: NewRoom| {
        Room::create(
            RoomId::generate(),
            "org1",
            request,
            &definition,
            &RoomDefaults::default(),
            &limits,
            &owner,
            now(),
        )
        .map(|(room, _)| room)
        .unwrap_or_else(|error| panic!("a sample room is invalid: {error}"))
    };

    let waiting = create(NewRoom {
        label: "Waiting".to_owned(),
        configuration: ConfigurationInput {
            open_at: Some(now() + Duration::hours(1)),
            ..ConfigurationInput::default()
        },
        ..NewRoom::default()
    });

    let mut busy = create(NewRoom {
        label: "Busy".to_owned(),
        acl: vec!["account.acc2.read".to_owned()],
        custom: [
            ("c_text".to_owned(), Value::from("text")),
            ("c_number".to_owned(), Value::from(7)),
            ("c_flag".to_owned(), Value::from(true)),
            ("c_date".to_owned(), Value::from("2026-01-01T00:00:00Z")),
            ("c_tags".to_owned(), Value::from(vec!["a", "b"])),
        ]
        .into(),
        configuration: ConfigurationInput {
            max_participants: Some(3),
            max_duration: Some(3600),
            ..ConfigurationInput::default()
        },
        open: true,
        ..NewRoom::default()
    });
    for account in ["owner1", "acc2"] {
        if let Err(error) = busy.join(&Principal::account(account), None, now()) {
            panic!("a sample join failed: {error}");
        }
    }

    let tags: Vec<String> = (1..limits.max_custom_array_items)
        .map(|i| format!("tag{i}"))
        .collect();
    let full = create(NewRoom {
        label: "Full".to_owned(),
        custom: [("c_tags".to_owned(), Value::from(tags))].into(),
        open: true,
        ..NewRoom::default()
    });

    let mut closed = create(NewRoom {
        label: "Closed".to_owned(),
        open: true,
        ..NewRoom::default()
    });
    if let Err(error) = closed.close(&Principal::Service, now()) {
        panic!("closing a sample room failed: {error}");
    }

    vec![waiting, busy, full, closed]
}

/// Checks what must hold for every room the model accepted under `limits`:
/// valid fields within their bounds, custom values that validate again
/// unchanged, and a stored (JSON) form that reads back as the same room.
pub fn assert_room_valid(room: &Room, definition: &RoomDefinition, limits: &Limits) {
    assert!(
        validate::label("label", &room.label, limits.max_label_chars).is_ok(),
        "label {:?}",
        room.label
    );

    assert!(
        room.acl.len() <= limits.max_acl_entries,
        "{} ACL entries",
        room.acl.len()
    );
    let distinct: HashSet<_> = room.acl.iter().collect();
    assert_eq!(distinct.len(), room.acl.len(), "duplicate ACL entries");

    let configuration = &room.configuration;
    assert!((MIN_PARTICIPANTS..=MAX_PARTICIPANTS).contains(&configuration.max_participants));
    for timeout in [
        Some(configuration.unused_timeout),
        Some(configuration.empty_timeout),
        configuration.max_duration,
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            (1..=MAX_TIMEOUT_SECS).contains(&timeout),
            "timeout {timeout}"
        );
    }
    assert!(room.connected_count() <= configuration.max_participants as usize);
    if room.state == RoomState::Closed {
        assert_eq!(room.connected_count(), 0);
        assert_eq!(room.next_deadline(), None);
    }

    assert_eq!(
        definition.check_values(&room.custom, limits).as_ref(),
        Ok(&room.custom),
        "stored custom values do not validate again unchanged"
    );

    let stored = serde_json::to_string(room).expect("a room serializes to JSON");
    let loaded: Room = serde_json::from_str(&stored)
        .unwrap_or_else(|error| panic!("stored room {stored} does not load: {error}"));
    assert_eq!(
        &loaded, room,
        "the room changed through its stored form {stored}"
    );
}
