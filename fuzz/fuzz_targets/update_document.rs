//! Update documents: a document that parses is applied to each sample room
//! for each sample principal. A rejected document leaves the room exactly
//! as it was. An accepted one bumps the version once and numbers its events
//! from the room's last sequence number. The room it leaves is valid within
//! the limits the update applied.

#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use roomd_fuzz::{
    MAX_JSON_DEPTH, assert_room_valid, definition, field_value, limits, now, principals, rooms,
    text_mode, word,
};
use roomd_model::{RoomError, RoomState, UpdateDocument};
use serde_json::{Map, Value};

const OPERATORS: &[&str] = &["$set", "$unset", "$push", "$pull"];
const PATHS: &[&str] = &[
    "label",
    "state",
    "acl",
    "configuration",
    "configuration.maxParticipants",
    "configuration.unusedTimeout",
    "configuration.emptyTimeout",
    "configuration.maxDuration",
    "configuration.openAt",
    "c_text",
    "c_number",
    "c_flag",
    "c_date",
    "c_tags",
    "c_dates",
    "c_note",
    "c_unknown",
    "owner",
];

/// Builds an object of operators, each an object of paths to values.
fn structured_document(u: &mut Unstructured) -> arbitrary::Result<Value> {
    let mut operators = Map::new();
    for _ in 0..u.int_in_range(1..=3)? {
        let mut paths = Map::new();
        for _ in 0..u.int_in_range(1..=3)? {
            paths.insert(word(u, PATHS)?, field_value(u, MAX_JSON_DEPTH - 1)?);
        }
        operators.insert(word(u, OPERATORS)?, Value::Object(paths));
    }
    Ok(Value::Object(operators))
}

fn check(text: &str) {
    let document = match UpdateDocument::parse(text) {
        Ok(document) => document,
        Err(error) => {
            assert!(matches!(error, RoomError::Validation { .. }), "{error:?}");
            return;
        }
    };

    let definition = definition();
    let limits = limits();
    for room in rooms() {
        for principal in principals() {
            for expected_version in [None, Some(room.version)] {
                let mut updated = room.clone();
                let result = updated.update(
                    &principal,
                    &document,
                    &definition,
                    &limits,
                    expected_version,
                    now(),
                );
                match result {
                    Err(_) => assert_eq!(updated, room, "a rejected update changed the room"),
                    Ok(events) if events.is_empty() => {
                        assert_eq!(updated, room, "an update without events changed the room")
                    }
                    Ok(events) => {
                        assert_ne!(room.state, RoomState::Closed, "a closed room changed");
                        assert_eq!(updated.version, room.version + 1);
                        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
                        let expected: Vec<u64> = (room.last_seq + 1..=updated.last_seq).collect();
                        assert_eq!(seqs, expected);
                        assert_room_valid(&updated, &definition, &limits);
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(text) = text_mode(data) {
        check(text);
        return;
    }
    let mut u = Unstructured::new(data.get(1..).unwrap_or_default());
    if let Ok(document) = structured_document(&mut u) {
        check(&document.to_string());
    }
});
