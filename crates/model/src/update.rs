//! JSON update documents, in the manner of a document store:
//!
//! ```json
//! {"$set": {"label": "Follow-up", "c_number": 7}, "$unset": {"c_note": ""}}
//! {"$push": {"acl": ["account.acc2.read"]}}
//! ```
//!
//! A document is parsed and checked against the room as a whole before any
//! of it applies, so a rejected document changes nothing. Writable paths are
//! `label`, `state` (only to `closed`), `acl`, `configuration.*` and custom
//! properties.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::acl::{AclEntry, Level, Principal};
use crate::definition::{RoomDefinition, check_array_items, parse_date};
use crate::error::{RoomError, RoomResult};
use crate::event::EventName;
use crate::limits::Limits;
use crate::room::{
    CloseReason, EventDraft, Room, RoomState, check_max_participants, check_timeout, push_distinct,
};
use crate::validate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Operator {
    Set,
    Unset,
    Push,
    Pull,
}

impl Operator {
    fn parse(name: &str) -> RoomResult<Self> {
        match name {
            "$set" => Ok(Operator::Set),
            "$unset" => Ok(Operator::Unset),
            "$push" => Ok(Operator::Push),
            "$pull" => Ok(Operator::Pull),
            _ => Err(RoomError::validation(
                name,
                "unknown update operator; expected $set, $unset, $push or $pull",
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Label,
    State,
    Acl,
    MaxParticipants,
    UnusedTimeout,
    EmptyTimeout,
    MaxDuration,
    OpenAt,
    Custom(String),
}

impl Field {
    fn parse(path: &str) -> RoomResult<Self> {
        let field = match path {
            "label" => Field::Label,
            "state" => Field::State,
            "acl" => Field::Acl,
            "configuration.maxParticipants" => Field::MaxParticipants,
            "configuration.unusedTimeout" => Field::UnusedTimeout,
            "configuration.emptyTimeout" => Field::EmptyTimeout,
            "configuration.maxDuration" => Field::MaxDuration,
            "configuration.openAt" => Field::OpenAt,
            custom if custom.starts_with("c_") => Field::Custom(custom.to_owned()),
            _ => {
                return Err(RoomError::validation(
                    path,
                    "is not a writable path; use label, state, acl, configuration.* or a c_ property",
                ));
            }
        };
        Ok(field)
    }

    fn required_level(&self) -> Level {
        match self {
            Field::Acl => Level::Share,
            _ => Level::Update,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Operation {
    operator: Operator,
    path: String,
    field: Field,
    value: Value,
}

/// A parsed update document. Parsing checks its shape; applying it with
/// [`Room::update`] checks it against the room and the org's definition.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateDocument {
    operations: Vec<Operation>,
}

impl UpdateDocument {
    /// Parses a document from JSON text. An object that names a key twice is
    /// rejected, because it would name an operator or a path twice.
    pub fn parse(text: &str) -> RoomResult<Self> {
        let UniqueKeys(value) = serde_json::from_str(text)
            .map_err(|e| RoomError::validation("update", format!("is not valid JSON: {e}")))?;
        Self::from_value(&value)
    }

    /// Parses a document from a JSON value.
    pub fn from_value(value: &Value) -> RoomResult<Self> {
        let Value::Object(operators) = value else {
            return Err(RoomError::validation(
                "update",
                "must be a JSON object of update operators",
            ));
        };
        if operators.is_empty() {
            return Err(RoomError::validation("update", "has no update operator"));
        }

        let mut operations = Vec::new();
        let mut seen = BTreeSet::new();
        for (name, fields) in operators {
            let operator = Operator::parse(name)?;
            let Value::Object(fields) = fields else {
                return Err(RoomError::validation(
                    name.as_str(),
                    "must be an object of paths to values",
                ));
            };
            if fields.is_empty() {
                return Err(RoomError::validation(name.as_str(), "names no path"));
            }
            for (path, value) in expand_paths(operator, fields) {
                let field = Field::parse(&path)?;
                if !seen.insert(field.clone()) {
                    return Err(RoomError::validation(
                        path,
                        "is named twice in the update document",
                    ));
                }
                operations.push(Operation {
                    operator,
                    path,
                    field,
                    value,
                });
            }
        }
        Ok(UpdateDocument { operations })
    }

    /// Returns the access level the document needs: `share` for ACL changes,
    /// `update` for anything else.
    pub fn required_level(&self) -> Level {
        self.operations
            .iter()
            .map(|op| op.field.required_level())
            .max()
            .unwrap_or(Level::Update)
    }
}

/// A JSON value in which no object names a key twice. serde_json keeps the
/// last of two equal keys, so `{"$set": {"label": "a", "label": "b"}}`
/// would otherwise set `label` twice unnoticed.
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{value} is not a finite number")))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("key {key:?} appears twice")));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Expands `{"$set": {"configuration": {...}}}` into one path per key, so a
/// configuration field named both ways counts as named twice.
fn expand_paths(operator: Operator, fields: &Map<String, Value>) -> Vec<(String, Value)> {
    let mut paths = Vec::new();
    for (path, value) in fields {
        match (operator, path.as_str(), value) {
            (Operator::Set, "configuration", Value::Object(inner)) if !inner.is_empty() => {
                for (key, value) in inner {
                    paths.push((format!("configuration.{key}"), value.clone()));
                }
            }
            _ => paths.push((path.clone(), value.clone())),
        }
    }
    paths
}

impl Room {
    /// Applies an update document as one change. The caller needs `share`
    /// for ACL paths and `update` for the rest. Entries added to or removed
    /// from the ACL may not grant more than the caller's own level. With
    /// `expected_version`, the update applies only at that version. A
    /// document that changes nothing returns no events. The ACL and the
    /// custom properties may not grow beyond `limits`.
    pub fn update(
        &mut self,
        principal: &Principal,
        document: &UpdateDocument,
        definition: &RoomDefinition,
        limits: &Limits,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> RoomResult<Vec<crate::Event>> {
        let granted = self.require(principal, document.required_level())?;
        if let Some(expected) = expected_version
            && expected != self.version
        {
            return Err(RoomError::VersionConflict {
                room_id: self.id.to_string(),
                expected,
                actual: self.version,
            });
        }
        self.require_not_closed()?;

        let mut next = self.clone();
        let mut close = false;
        for operation in &document.operations {
            close |= next.apply(operation, definition, limits, granted)?;
        }
        Limits::check_growth(
            "acl",
            self.acl.len(),
            next.acl.len(),
            limits.max_acl_entries,
        )?;
        Limits::check_growth(
            "custom",
            self.custom.len(),
            next.custom.len(),
            limits.max_custom_properties,
        )?;
        let connected = next.connected_count() as u32;
        if next.configuration.max_participants < connected {
            return Err(RoomError::validation(
                "configuration.maxParticipants",
                format!("cannot go below the {connected} participants connected"),
            ));
        }
        if next.configuration != self.configuration {
            next.rearm_timers(&self.configuration);
        }

        let actor = principal.account_id();
        let mut drafts = Vec::new();
        if next.acl != self.acl {
            drafts.push(EventDraft::new(EventName::RoomAclChanged).by(actor));
        }
        if next.label != self.label
            || next.custom != self.custom
            || next.configuration != self.configuration
        {
            drafts.push(EventDraft::new(EventName::RoomUpdated).by(actor));
        }
        if close {
            drafts.extend(next.close_now(CloseReason::Requested, actor, now));
        }
        if drafts.is_empty() {
            return Ok(Vec::new());
        }

        let events = next.record_change(now, drafts);
        *self = next;
        Ok(events)
    }

    /// Applies one operation to a working copy. Returns whether the
    /// operation requests closing the room, which happens after every other
    /// operation has applied.
    fn apply(
        &mut self,
        operation: &Operation,
        definition: &RoomDefinition,
        limits: &Limits,
        granted: Level,
    ) -> RoomResult<bool> {
        let Operation {
            operator,
            path,
            field,
            value,
        } = operation;
        let path = path.as_str();
        match (operator, field) {
            (Operator::Set, Field::Label) => {
                let label = expect_str(path, value)?;
                validate::label(path, label, limits.max_label_chars)?;
                self.label = label.to_owned();
            }
            (Operator::Set, Field::State) => return self.check_state_change(path, value),
            (Operator::Set, Field::Acl) => {
                let entries = parse_entries(path, value, false)?;
                let mut acl = Vec::new();
                let max = limits.max_acl_entries.max(self.acl.len());
                for entry in entries {
                    push_distinct(path, &mut acl, entry, max)?;
                }
                for entry in self.acl.iter().filter(|e| !acl.contains(e)) {
                    check_grant(path, entry, granted)?;
                }
                for entry in acl.iter().filter(|e| !self.acl.contains(e)) {
                    check_grant(path, entry, granted)?;
                }
                self.acl = acl;
            }
            (Operator::Push, Field::Acl) => {
                let max = limits.max_acl_entries.max(self.acl.len());
                for entry in parse_entries(path, value, true)? {
                    if !self.acl.contains(&entry) {
                        check_grant(path, &entry, granted)?;
                        push_distinct(path, &mut self.acl, entry, max)?;
                    }
                }
            }
            (Operator::Pull, Field::Acl) => {
                for entry in parse_entries(path, value, true)? {
                    if self.acl.contains(&entry) {
                        check_grant(path, &entry, granted)?;
                        self.acl.retain(|e| *e != entry);
                    }
                }
            }
            (Operator::Set, Field::MaxParticipants) => {
                let max = expect_u32(path, value)?;
                check_max_participants(path, max)?;
                self.configuration.max_participants = max;
            }
            (Operator::Set, Field::UnusedTimeout) => {
                let secs = expect_u32(path, value)?;
                check_timeout(path, secs)?;
                self.configuration.unused_timeout = secs;
            }
            (Operator::Set, Field::EmptyTimeout) => {
                let secs = expect_u32(path, value)?;
                check_timeout(path, secs)?;
                self.configuration.empty_timeout = secs;
            }
            (Operator::Set, Field::MaxDuration) => {
                let secs = expect_u32(path, value)?;
                check_timeout(path, secs)?;
                self.configuration.max_duration = Some(secs);
            }
            (Operator::Unset, Field::MaxDuration) => self.configuration.max_duration = None,
            (Operator::Set, Field::OpenAt) => {
                self.require_new(path)?;
                let at = parse_date(path, expect_str(path, value)?)?;
                self.configuration.open_at = Some(at);
            }
            (Operator::Unset, Field::OpenAt) => {
                self.require_new(path)?;
                self.configuration.open_at = None;
            }
            (Operator::Set, Field::Custom(name)) => {
                let property = definition.require_property(path, name)?;
                let value = property.check_value(path, value, limits)?;
                self.custom.insert(name.clone(), value);
            }
            (Operator::Unset, Field::Custom(name)) => {
                definition.require_property(path, name)?;
                self.custom.remove(name);
            }
            (Operator::Push | Operator::Pull, Field::Custom(name)) => {
                let property = definition.require_property(path, name)?;
                if !property.array {
                    return Err(RoomError::validation(
                        path,
                        "is not an array property, so $push and $pull do not apply",
                    ));
                }
                let items: Vec<Value> = one_or_many(value)
                    .iter()
                    .enumerate()
                    .map(|(i, item)| property.check_scalar(&format!("{path}[{i}]"), item, limits))
                    .collect::<RoomResult<_>>()?;
                let current = self
                    .custom
                    .entry(name.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(current) = current else {
                    return Err(RoomError::validation(
                        path,
                        "holds a value that is not an array",
                    ));
                };
                if *operator == Operator::Push {
                    current.extend(items);
                    check_array_items(path, current.len(), limits)?;
                } else {
                    current.retain(|item| !items.contains(item));
                }
            }
            (Operator::Unset, Field::Label | Field::State | Field::Acl) => {
                return Err(RoomError::validation(
                    path,
                    "is required and cannot be unset",
                ));
            }
            (Operator::Unset, _) => {
                return Err(RoomError::validation(
                    path,
                    "cannot be unset; $set a new value instead",
                ));
            }
            (Operator::Push | Operator::Pull, _) => {
                return Err(RoomError::validation(
                    path,
                    "is not a list, so $push and $pull do not apply",
                ));
            }
        }
        Ok(false)
    }

    /// Checks `$set` of `state`: clients may only close a room.
    fn check_state_change(&self, path: &str, value: &Value) -> RoomResult<bool> {
        let text = expect_str(path, value)?;
        let target: RoomState = text
            .parse()
            .map_err(|message: String| RoomError::validation(path, message))?;
        match target {
            RoomState::Closed => Ok(true),
            other => Err(self.transition_fault(other)),
        }
    }

    fn require_new(&self, path: &str) -> RoomResult<()> {
        if self.state == RoomState::New {
            Ok(())
        } else {
            Err(RoomError::validation(
                path,
                "can only change while the room is new",
            ))
        }
    }
}

fn check_grant(path: &str, entry: &AclEntry, granted: Level) -> RoomResult<()> {
    if entry.level > granted {
        return Err(RoomError::validation(
            path,
            format!(
                "entry {entry} grants {}, more than the caller's own {granted}",
                entry.level
            ),
        ));
    }
    Ok(())
}

fn one_or_many(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

fn parse_entries(path: &str, value: &Value, single_allowed: bool) -> RoomResult<Vec<AclEntry>> {
    let items = match value {
        Value::Array(items) => items.clone(),
        Value::String(_) if single_allowed => vec![value.clone()],
        _ => {
            return Err(RoomError::validation(
                path,
                "must be an array of ACL entry strings",
            ));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let item_path = format!("{path}[{i}]");
            let text = item.as_str().ok_or_else(|| {
                RoomError::validation(item_path.as_str(), "must be an ACL entry string")
            })?;
            AclEntry::parse_at(&item_path, text)
        })
        .collect()
}

fn expect_str<'a>(path: &str, value: &'a Value) -> RoomResult<&'a str> {
    value
        .as_str()
        .ok_or_else(|| RoomError::validation(path, format!("must be a string, not {value}")))
}

fn expect_u32(path: &str, value: &Value) -> RoomResult<u32> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            RoomError::validation(
                path,
                format!("must be a whole number of seconds or a count, not {value}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::room::tests::{definition, open_room, t0};

    fn update(room: &mut Room, principal: &Principal, doc: Value) -> RoomResult<Vec<crate::Event>> {
        let document = UpdateDocument::from_value(&doc)?;
        room.update(
            principal,
            &document,
            &definition(),
            &Limits::default(),
            None,
            t0(),
        )
    }

    #[test]
    fn push_acl_adds_entry_once() {
        let mut room = open_room(&[]);
        let events = update(
            &mut room,
            &Principal::Service,
            json!({"$push": {"acl": ["account.acc2.read"]}}),
        )
        .unwrap();
        assert_eq!(events[0].name, EventName::RoomAclChanged);
        assert!(room.acl.contains(&"account.acc2.read".parse().unwrap()));

        let again = update(
            &mut room,
            &Principal::Service,
            json!({"$push": {"acl": "account.acc2.read"}}),
        )
        .unwrap();
        assert!(again.is_empty());
    }

    #[test]
    fn set_state_closed_closes_with_requested() {
        let mut room = open_room(&[]);
        let events = update(
            &mut room,
            &Principal::Service,
            json!({"$set": {"state": "closed"}}),
        )
        .unwrap();
        assert_eq!(events.last().unwrap().name, EventName::RoomClosed);
        assert_eq!(room.close_reason, Some(CloseReason::Requested));
    }

    #[test]
    fn closed_room_rejects_reopen() {
        let mut room = open_room(&[]);
        update(
            &mut room,
            &Principal::Service,
            json!({"$set": {"state": "closed"}}),
        )
        .unwrap();
        let err = update(
            &mut room,
            &Principal::Service,
            json!({"$set": {"state": "open"}}),
        )
        .unwrap_err();
        assert_eq!(err.reason(), "invalidState.closed");
    }

    #[test]
    fn set_state_open_is_a_transition_fault() {
        let mut room = open_room(&[]);
        let err = update(
            &mut room,
            &Principal::Service,
            json!({"$set": {"state": "new"}}),
        )
        .unwrap_err();
        assert_eq!(err.reason(), "invalidState.transition");
    }

    #[test]
    fn rejected_document_changes_nothing() {
        let mut room = open_room(&[]);
        let before = room.clone();
        let err = update(
            &mut room,
            &Principal::Service,
            json!({"$set": {"label": "New", "c_number": "seven"}}),
        )
        .unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "c_number".to_string())]);
        assert_eq!(room, before);
    }

    #[test]
    fn faults_name_the_path() {
        let mut room = open_room(&[]);
        let cases = [
            (json!({"$rename": {"label": "x"}}), "$rename"),
            (json!({"$set": {"owner": "x"}}), "owner"),
            (json!({"$set": {"label": 5}}), "label"),
            (json!({"$unset": {"label": ""}}), "label"),
            (json!({"$push": {"label": "x"}}), "label"),
            (json!({"$push": {"acl": ["bogus"]}}), "acl[0]"),
            (
                json!({"$set": {"configuration.unusedTimeout": 0}}),
                "configuration.unusedTimeout",
            ),
            (
                json!({"$set": {"configuration.maxParticipants": 501}}),
                "configuration.maxParticipants",
            ),
            (
                json!({"$set": {"acl": []}, "$push": {"acl": ["owner.read"]}}),
                "acl",
            ),
            (json!({"$set": {"c_unknown": 1}}), "c_unknown"),
            (json!({"$push": {"c_number": 1}}), "c_number"),
            (
                json!({"$set": {"configuration.openAt": "2030-01-01T00:00:00Z"}}),
                "configuration.openAt",
            ),
            (json!({}), "update"),
            (json!([1]), "update"),
            (json!({"$set": {}}), "$set"),
        ];
        for (doc, path) in cases {
            let err = update(&mut room, &Principal::Service, doc.clone()).unwrap_err();
            assert_eq!(err.reason(), "invalidArgument.validation", "{doc}");
            assert_eq!(err.metadata(), vec![("path", path.to_string())], "{doc}");
        }
    }

    #[test]
    fn configuration_object_and_path_count_as_twice() {
        let doc = json!({"$set": {"configuration": {"emptyTimeout": 5}}, "$unset": {"configuration.emptyTimeout": ""}});
        let err = UpdateDocument::from_value(&doc).unwrap_err();
        assert_eq!(
            err.metadata(),
            vec![("path", "configuration.emptyTimeout".to_string())]
        );
    }

    #[test]
    fn sharing_cannot_grant_more_than_own_level() {
        let mut room = open_room(&["account.acc1.share"]);
        let sharer = Principal::account("acc1");
        let err = update(
            &mut room,
            &sharer,
            json!({"$push": {"acl": ["account.acc2.update"]}}),
        )
        .unwrap_err();
        assert_eq!(err.reason(), "invalidArgument.validation");
        update(
            &mut room,
            &sharer,
            json!({"$push": {"acl": ["account.acc2.share"]}}),
        )
        .unwrap();

        let err = update(&mut room, &sharer, json!({"$set": {"label": "x"}})).unwrap_err();
        assert_eq!(err.reason(), "accessDenied.update");
    }

    #[test]
    fn expected_version_mismatch_is_a_conflict() {
        let mut room = open_room(&[]);
        let document = UpdateDocument::parse(r#"{"$set": {"label": "x"}}"#).unwrap();
        let err = room
            .update(
                &Principal::Service,
                &document,
                &definition(),
                &Limits::default(),
                Some(room.version + 1),
                t0(),
            )
            .unwrap_err();
        assert_eq!(err.reason(), "conflict.version");
        room.update(
            &Principal::Service,
            &document,
            &definition(),
            &Limits::default(),
            Some(room.version),
            t0(),
        )
        .unwrap();
        assert_eq!(room.label, "x");
    }

    #[test]
    fn new_unused_timeout_rearms_from_opening() {
        let mut room = open_room(&[]);
        update(
            &mut room,
            &Principal::Service,
            json!({"$set": {"configuration.unusedTimeout": 10}}),
        )
        .unwrap();
        assert_eq!(
            room.deadlines.unused,
            Some(t0() + chrono::Duration::seconds(10))
        );
        update(
            &mut room,
            &Principal::Service,
            json!({"$set": {"configuration.maxDuration": 60}}),
        )
        .unwrap();
        assert_eq!(
            room.deadlines.max_duration,
            Some(t0() + chrono::Duration::seconds(60))
        );
        update(
            &mut room,
            &Principal::Service,
            json!({"$unset": {"configuration.maxDuration": ""}}),
        )
        .unwrap();
        assert_eq!(room.deadlines.max_duration, None);
    }

    #[test]
    fn max_participants_not_below_connected() {
        let mut room = open_room(&["account.public.read"]);
        update(
            &mut room,
            &Principal::Service,
            json!({"$set": {"configuration.maxParticipants": 3}}),
        )
        .unwrap();
        for account in ["a", "b", "c"] {
            room.join(&Principal::account(account), None, t0()).unwrap();
        }
        let err = update(
            &mut room,
            &Principal::Service,
            json!({"$set": {"configuration.maxParticipants": 2}}),
        )
        .unwrap_err();
        assert_eq!(
            err.metadata(),
            vec![("path", "configuration.maxParticipants".to_string())]
        );
    }

    #[test]
    fn custom_array_push_and_pull() {
        let mut room = open_room(&[]);
        update(
            &mut room,
            &Principal::Service,
            json!({"$push": {"c_tags": ["a", "b", "a"]}}),
        )
        .unwrap();
        update(
            &mut room,
            &Principal::Service,
            json!({"$pull": {"c_tags": "a"}}),
        )
        .unwrap();
        assert_eq!(room.custom["c_tags"], json!(["b"]));
    }

    fn update_within(
        room: &mut Room,
        limits: &Limits,
        doc: Value,
    ) -> RoomResult<Vec<crate::Event>> {
        let document = UpdateDocument::from_value(&doc)?;
        room.update(
            &Principal::Service,
            &document,
            &definition(),
            limits,
            None,
            t0(),
        )
    }

    #[test]
    fn label_at_and_over_the_limit() {
        let limits = Limits {
            max_label_chars: 5,
            ..Limits::default()
        };
        let mut room = open_room(&[]);
        update_within(&mut room, &limits, json!({"$set": {"label": "abcde"}})).unwrap();
        assert_eq!(room.label, "abcde");

        let before = room.clone();
        let err =
            update_within(&mut room, &limits, json!({"$set": {"label": "abcdef"}})).unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "label".to_string())]);
        assert!(err.to_string().contains("the limit is 5"), "{err}");
        assert_eq!(room, before);
    }

    #[test]
    fn acl_entries_at_and_over_the_limit() {
        // The room starts with owner.delete, so two pushed entries make 3.
        let limits = Limits {
            max_acl_entries: 3,
            ..Limits::default()
        };
        let mut room = open_room(&[]);
        update_within(
            &mut room,
            &limits,
            json!({"$push": {"acl": ["account.a.read", "account.b.read"]}}),
        )
        .unwrap();
        assert_eq!(room.acl.len(), 3);

        let before = room.clone();
        let err = update_within(
            &mut room,
            &limits,
            json!({"$push": {"acl": "account.c.read"}}),
        )
        .unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "acl".to_string())]);
        assert!(err.to_string().contains("the limit is 3"), "{err}");
        assert_eq!(room, before);
    }

    #[test]
    fn acl_over_a_lowered_limit_may_shrink() {
        let mut room = open_room(&["account.a.read", "account.b.read"]);
        let lowered = Limits {
            max_acl_entries: 1,
            ..Limits::default()
        };
        update_within(
            &mut room,
            &lowered,
            json!({"$pull": {"acl": "account.a.read"}}),
        )
        .unwrap();
        assert_eq!(room.acl.len(), 2);
    }

    #[test]
    fn custom_properties_at_and_over_the_limit() {
        let limits = Limits {
            max_custom_properties: 1,
            ..Limits::default()
        };
        let mut room = open_room(&[]);
        update_within(&mut room, &limits, json!({"$set": {"c_number": 1}})).unwrap();
        update_within(&mut room, &limits, json!({"$set": {"c_number": 2}})).unwrap();

        let before = room.clone();
        let err = update_within(&mut room, &limits, json!({"$push": {"c_tags": "a"}})).unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "custom".to_string())]);
        assert!(err.to_string().contains("the limit is 1"), "{err}");
        assert_eq!(room, before);
    }

    #[test]
    fn array_push_at_and_over_the_limit() {
        let limits = Limits {
            max_custom_array_items: 2,
            ..Limits::default()
        };
        let mut room = open_room(&[]);
        update_within(&mut room, &limits, json!({"$push": {"c_tags": ["a", "b"]}})).unwrap();

        let before = room.clone();
        let err = update_within(&mut room, &limits, json!({"$push": {"c_tags": "c"}})).unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "c_tags".to_string())]);
        assert!(err.to_string().contains("the limit is 2"), "{err}");
        assert_eq!(room, before);
    }

    // Each ACL list used to be deduplicated whole, in quadratic time, before
    // its size was checked, so one request with 100,000 entries kept a room
    // actor busy for seconds.
    #[test]
    fn huge_acl_lists_rejected() {
        let entries: Vec<String> = (0..100_000)
            .map(|i| format!("account.acc{i}.read"))
            .collect();
        for operator in ["$set", "$push"] {
            let mut room = open_room(&[]);
            let before = room.clone();
            let err = update(
                &mut room,
                &Principal::Service,
                json!({operator: {"acl": entries}}),
            )
            .unwrap_err();
            assert_eq!(
                err.metadata(),
                vec![("path", "acl".to_string())],
                "{operator}"
            );
            assert!(err.to_string().contains("more than 100 distinct"), "{err}");
            assert_eq!(room, before, "{operator}");
        }
    }

    #[test]
    fn repeated_acl_entries_count_once() {
        let mut room = open_room(&[]);
        let entries = vec!["account.acc2.read"; 1000];
        update(
            &mut room,
            &Principal::Service,
            json!({"$set": {"acl": entries}}),
        )
        .unwrap();
        assert_eq!(room.acl, vec!["account.acc2.read".parse().unwrap()]);
    }

    #[test]
    fn key_named_twice_rejected() {
        for text in [
            r#"{"$set": {"label": "a", "label": "b"}}"#,
            r#"{"$set": {"label": "a"}, "$set": {"c_number": 1}}"#,
            r#"{"$set": {"configuration": {"emptyTimeout": 5, "emptyTimeout": 6}}}"#,
        ] {
            let err = UpdateDocument::parse(text).unwrap_err();
            assert_eq!(
                err.metadata(),
                vec![("path", "update".to_string())],
                "{text}"
            );
            assert!(err.to_string().contains("appears twice"), "{err}");
        }
    }

    #[test]
    fn parse_keeps_values_and_nesting_limit() {
        let document = UpdateDocument::parse(
            r#"{"$set": {"label": "x", "c_number": -1.5e-7, "c_tags": [null, true, 18446744073709551615]}}"#,
        )
        .unwrap();
        let expected = UpdateDocument::from_value(
            &json!({"$set": {"label": "x", "c_number": -1.5e-7, "c_tags": [null, true, 18446744073709551615_u64]}}),
        )
        .unwrap();
        assert_eq!(document, expected);

        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = UpdateDocument::parse(&deep).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
    }
}
