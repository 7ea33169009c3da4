//! Conversions between the wire messages of `roomd.v1` and the model.
//!
//! Model-to-wire functions return the message directly. Wire-to-model
//! functions return an error naming the field when a peer sent something
//! the model cannot hold (an unknown enum value, a bad id or timestamp).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use prost_types::{ListValue, Struct, Timestamp, value::Kind};
use roomd_model::definition::{PropertyDefinition, PropertyType};
use roomd_model::event::EventName;
use roomd_model::room::ObjectKind;
use roomd_model::{
    AclEntry, CloseReason, Configuration, Deadlines, Event, Participant, ParticipantStatus,
    RoomDefinition, RoomId, RoomState,
};
use serde_json::{Map, Number, Value};

use crate::v1;

pub type ConvertResult<T> = Result<T, String>;

pub fn timestamp(at: &DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

pub fn from_timestamp(field: &str, at: &Timestamp) -> ConvertResult<DateTime<Utc>> {
    u32::try_from(at.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(at.seconds, nanos))
        .ok_or_else(|| format!("{field} is not a valid timestamp"))
}

fn optional_time(field: &str, at: Option<&Timestamp>) -> ConvertResult<Option<DateTime<Utc>>> {
    at.map(|at| from_timestamp(field, at)).transpose()
}

pub fn state(state: RoomState) -> v1::RoomState {
    match state {
        RoomState::New => v1::RoomState::New,
        RoomState::Open => v1::RoomState::Open,
        RoomState::Closed => v1::RoomState::Closed,
    }
}

pub fn close_reason(reason: Option<CloseReason>) -> v1::CloseReason {
    match reason {
        None => v1::CloseReason::Unspecified,
        Some(CloseReason::Requested) => v1::CloseReason::Requested,
        Some(CloseReason::UnusedTimeout) => v1::CloseReason::UnusedTimeout,
        Some(CloseReason::EmptyTimeout) => v1::CloseReason::EmptyTimeout,
        Some(CloseReason::MaxDuration) => v1::CloseReason::MaxDuration,
        Some(CloseReason::Deleted) => v1::CloseReason::Deleted,
    }
}

pub fn room(room: &roomd_model::Room) -> v1::Room {
    v1::Room {
        id: room.id.to_string(),
        org: room.org.clone(),
        label: room.label.clone(),
        state: state(room.state) as i32,
        close_reason: close_reason(room.close_reason) as i32,
        acl: room.acl.iter().map(ToString::to_string).collect(),
        owner: room.owner.clone().unwrap_or_default(),
        creator: room.creator.clone().unwrap_or_default(),
        configuration: Some(configuration(&room.configuration)),
        participants: room.participants.iter().map(participant).collect(),
        custom: Some(json_object_to_struct(&room.custom)),
        created: Some(timestamp(&room.created)),
        updated: Some(timestamp(&room.updated)),
        opened_at: room.opened_at.as_ref().map(timestamp),
        closed_at: room.closed_at.as_ref().map(timestamp),
        version: room.version,
        deadlines: Some(deadlines(&room.deadlines)),
        last_seq: room.last_seq,
    }
}

fn configuration(configuration: &Configuration) -> v1::RoomConfiguration {
    v1::RoomConfiguration {
        max_participants: configuration.max_participants,
        unused_timeout: configuration.unused_timeout,
        empty_timeout: configuration.empty_timeout,
        max_duration: configuration.max_duration,
        open_at: configuration.open_at.as_ref().map(timestamp),
    }
}

fn deadlines(deadlines: &Deadlines) -> v1::Deadlines {
    v1::Deadlines {
        open: deadlines.open.as_ref().map(timestamp),
        unused: deadlines.unused.as_ref().map(timestamp),
        empty: deadlines.empty.as_ref().map(timestamp),
        max_duration: deadlines.max_duration.as_ref().map(timestamp),
    }
}

pub fn participant(participant: &Participant) -> v1::Participant {
    let status = match participant.status {
        ParticipantStatus::Connected => v1::ParticipantStatus::Connected,
        ParticipantStatus::Disconnected => v1::ParticipantStatus::Disconnected,
    };
    v1::Participant {
        account: participant.account.clone(),
        status: status as i32,
        joined: Some(timestamp(&participant.joined)),
        left: participant.left.as_ref().map(timestamp),
    }
}

pub fn event(event: &Event) -> v1::RoomEvent {
    v1::RoomEvent {
        seq: event.seq,
        r#type: event.name.object_type().as_str().to_owned(),
        name: event.name.as_str().to_owned(),
        room_id: event.room_id.to_string(),
        account_id: event.account_id.clone().unwrap_or_default(),
        reason: event.reason.clone().unwrap_or_default(),
        at: Some(timestamp(&event.at)),
        version: event.version,
        epoch: event.epoch,
    }
}

pub fn definition(definition: &RoomDefinition) -> v1::RoomDefinition {
    v1::RoomDefinition {
        org: definition.org.clone(),
        label: definition.label.clone(),
        default_acl: definition
            .default_acl
            .iter()
            .map(ToString::to_string)
            .collect(),
        properties: definition
            .properties
            .iter()
            .map(|p| v1::PropertyDefinition {
                name: p.name.clone(),
                label: p.label.clone(),
                r#type: property_type(p.kind) as i32,
                array: p.array,
                indexed: p.indexed,
            })
            .collect(),
        max_open_rooms: definition.max_open_rooms,
    }
}

pub fn property_type(kind: PropertyType) -> v1::PropertyType {
    match kind {
        PropertyType::String => v1::PropertyType::String,
        PropertyType::Number => v1::PropertyType::Number,
        PropertyType::Boolean => v1::PropertyType::Boolean,
        PropertyType::Date => v1::PropertyType::Date,
    }
}

pub fn from_property_type(field: &str, value: i32) -> ConvertResult<PropertyType> {
    match v1::PropertyType::try_from(value) {
        Ok(v1::PropertyType::String) => Ok(PropertyType::String),
        Ok(v1::PropertyType::Number) => Ok(PropertyType::Number),
        Ok(v1::PropertyType::Boolean) => Ok(PropertyType::Boolean),
        Ok(v1::PropertyType::Date) => Ok(PropertyType::Date),
        _ => Err(format!("{field} must be String, Number, Boolean or Date")),
    }
}

/// Reads the properties of a definition sent by a client; the rest of the
/// definition is checked by [`RoomDefinition::new`].
pub fn from_property_definitions(
    properties: &[v1::PropertyDefinition],
) -> ConvertResult<Vec<PropertyDefinition>> {
    properties
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(PropertyDefinition {
                name: p.name.clone(),
                label: if p.label.is_empty() {
                    p.name.clone()
                } else {
                    p.label.clone()
                },
                kind: from_property_type(&format!("properties[{i}].type"), p.r#type)?,
                array: p.array,
                indexed: p.indexed,
            })
        })
        .collect()
}

/// Rebuilds a model room from the wire form, as clients do to print it.
pub fn from_room(room: &v1::Room) -> ConvertResult<roomd_model::Room> {
    let state = match v1::RoomState::try_from(room.state) {
        Ok(v1::RoomState::New) => RoomState::New,
        Ok(v1::RoomState::Open) => RoomState::Open,
        Ok(v1::RoomState::Closed) => RoomState::Closed,
        _ => return Err("state is not new, open or closed".into()),
    };
    let close_reason = match v1::CloseReason::try_from(room.close_reason) {
        Ok(v1::CloseReason::Unspecified) => None,
        Ok(v1::CloseReason::Requested) => Some(CloseReason::Requested),
        Ok(v1::CloseReason::UnusedTimeout) => Some(CloseReason::UnusedTimeout),
        Ok(v1::CloseReason::EmptyTimeout) => Some(CloseReason::EmptyTimeout),
        Ok(v1::CloseReason::MaxDuration) => Some(CloseReason::MaxDuration),
        Ok(v1::CloseReason::Deleted) => Some(CloseReason::Deleted),
        Err(_) => return Err("closeReason is unknown".into()),
    };
    let acl = room
        .acl
        .iter()
        .map(|entry| entry.parse::<AclEntry>())
        .collect::<Result<Vec<_>, _>>()?;
    let configuration = room.configuration.unwrap_or_default();
    let deadlines = room.deadlines.unwrap_or_default();
    let required_time = |field: &str, at: Option<&Timestamp>| {
        at.ok_or_else(|| format!("{field} is missing"))
            .and_then(|at| from_timestamp(field, at))
    };

    Ok(roomd_model::Room {
        id: room.id.parse::<RoomId>().map_err(|e| format!("id: {e}"))?,
        object: ObjectKind::Room,
        org: room.org.clone(),
        label: room.label.clone(),
        state,
        close_reason,
        acl,
        owner: non_empty(&room.owner),
        creator: non_empty(&room.creator),
        configuration: Configuration {
            max_participants: configuration.max_participants,
            unused_timeout: configuration.unused_timeout,
            empty_timeout: configuration.empty_timeout,
            max_duration: configuration.max_duration,
            open_at: optional_time("configuration.openAt", configuration.open_at.as_ref())?,
        },
        participants: room
            .participants
            .iter()
            .map(from_participant)
            .collect::<ConvertResult<_>>()?,
        custom: room
            .custom
            .as_ref()
            .map(struct_to_json_object)
            .unwrap_or_default(),
        created: required_time("created", room.created.as_ref())?,
        updated: required_time("updated", room.updated.as_ref())?,
        opened_at: optional_time("openedAt", room.opened_at.as_ref())?,
        closed_at: optional_time("closedAt", room.closed_at.as_ref())?,
        version: room.version,
        last_seq: room.last_seq,
        deadlines: Deadlines {
            open: optional_time("deadlines.open", deadlines.open.as_ref())?,
            unused: optional_time("deadlines.unused", deadlines.unused.as_ref())?,
            empty: optional_time("deadlines.empty", deadlines.empty.as_ref())?,
            max_duration: optional_time("deadlines.maxDuration", deadlines.max_duration.as_ref())?,
        },
    })
}

pub fn from_participant(participant: &v1::Participant) -> ConvertResult<Participant> {
    let status = match v1::ParticipantStatus::try_from(participant.status) {
        Ok(v1::ParticipantStatus::Connected) => ParticipantStatus::Connected,
        Ok(v1::ParticipantStatus::Disconnected) => ParticipantStatus::Disconnected,
        _ => return Err("participant status is unknown".into()),
    };
    Ok(Participant {
        account: participant.account.clone(),
        status,
        joined: participant
            .joined
            .as_ref()
            .ok_or("participant joined time is missing")
            .map_err(str::to_owned)
            .and_then(|at| from_timestamp("joined", at))?,
        left: optional_time("left", participant.left.as_ref())?,
    })
}

pub fn from_event(event: &v1::RoomEvent) -> ConvertResult<Event> {
    let name: EventName = serde_json::from_value(Value::String(event.name.clone()))
        .map_err(|_| format!("unknown event name {:?}", event.name))?;
    Ok(Event {
        seq: event.seq,
        object_type: name.object_type(),
        name,
        room_id: event.room_id.parse().map_err(|e| format!("roomId: {e}"))?,
        account_id: non_empty(&event.account_id),
        reason: non_empty(&event.reason),
        at: event
            .at
            .as_ref()
            .ok_or_else(|| "event time is missing".to_owned())
            .and_then(|at| from_timestamp("at", at))?,
        version: event.version,
        epoch: event.epoch,
    })
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

pub fn json_object_to_struct(values: &BTreeMap<String, Value>) -> Struct {
    Struct {
        fields: values
            .iter()
            .map(|(key, value)| (key.clone(), json_to_value(value)))
            .collect(),
    }
}

pub fn struct_to_json_object(values: &Struct) -> BTreeMap<String, Value> {
    values
        .fields
        .iter()
        .map(|(key, value)| (key.clone(), value_to_json(value)))
        .collect()
}

pub fn json_to_value(value: &Value) -> prost_types::Value {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(Struct {
            fields: map
                .iter()
                .map(|(key, value)| (key.clone(), json_to_value(value)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// Converts a protobuf value to JSON. Numbers that are whole print without
/// a fraction, so `7` stays `7` rather than becoming `7.0`.
pub fn value_to_json(value: &prost_types::Value) -> Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => number_to_json(*n),
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(object)) => Value::Object(
            object
                .fields
                .iter()
                .map(|(key, value)| (key.clone(), value_to_json(value)))
                .collect::<Map<_, _>>(),
        ),
    }
}

fn number_to_json(n: f64) -> Value {
    const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() <= MAX_EXACT_INTEGER {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_values_round_trip() {
        let value = json!({"a": [1, 2.5, "x", true, null], "b": {"c": -3}});
        assert_eq!(value_to_json(&json_to_value(&value)), value);
    }

    #[test]
    fn room_round_trips_through_wire() {
        let (room, _) = roomd_model::Room::create(
            RoomId::generate(),
            "org1",
            roomd_model::NewRoom {
                label: "Visit".into(),
                acl: vec!["account.acc1.read".into()],
                open: true,
                ..Default::default()
            },
            &RoomDefinition::implicit("org1"),
            &roomd_model::RoomDefaults::default(),
            &roomd_model::Limits::default(),
            &roomd_model::Principal::account("acc1"),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(from_room(&super::room(&room)).unwrap(), room);
    }
}
