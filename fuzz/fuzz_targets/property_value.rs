//! Custom property values. A value that validates comes back in a stored
//! form that validates again unchanged, reads back from its JSON text as
//! the same value, and is found by an equality filter on the property.

#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use roomd_fuzz::{MAX_JSON_DEPTH, json_value, limits, now, text_mode};
use roomd_model::definition::{PropertyDefinition, PropertyType};
use roomd_model::{
    Filter, NewRoom, Principal, Room, RoomDefaults, RoomDefinition, RoomError, RoomId,
};
use serde_json::{Value, json};

const KINDS: [PropertyType; 4] = [
    PropertyType::String,
    PropertyType::Number,
    PropertyType::Boolean,
    PropertyType::Date,
];

fn check(kind: PropertyType, array: bool, value: &Value) {
    let property = PropertyDefinition {
        name: "c_value".to_owned(),
        label: "Value".to_owned(),
        kind,
        array,
        indexed: true,
    };
    let limits = limits();
    let stored = match property.check_value("c_value", value, &limits) {
        Ok(stored) => stored,
        Err(error) => {
            assert!(matches!(error, RoomError::Validation { .. }), "{error:?}");
            return;
        }
    };

    assert_eq!(
        property.check_value("c_value", &stored, &limits).as_ref(),
        Ok(&stored),
        "the stored form does not validate again unchanged"
    );
    let text = serde_json::to_string(&stored).expect("a value serializes");
    let loaded: Value = serde_json::from_str(&text).expect("a stored value loads");
    assert_eq!(
        loaded, stored,
        "the value changed through its JSON text {text}"
    );

    let Ok(definition) = RoomDefinition::new("org1", "Room", &[], vec![property]) else {
        panic!("the definition is invalid");
    };
    let request = NewRoom {
        label: "Room".to_owned(),
        custom: [("c_value".to_owned(), value.clone())].into(),
        ..NewRoom::default()
    };
    let (room, _) = Room::create(
        RoomId::generate(),
        "org1",
        request,
        &definition,
        &RoomDefaults::default(),
        &limits,
        &Principal::Service,
        now(),
    )
    .unwrap_or_else(|error| panic!("a room rejects a valid value: {error}"));
    assert_eq!(room.custom.get("c_value"), Some(&stored));

    let element = match &stored {
        Value::Array(items) => items.first(),
        scalar => Some(scalar),
    };
    if let Some(element) = element {
        let equality = json!({"c_value": {"$eq": element}});
        let filter = Filter::from_value(&equality, &definition, &limits)
            .unwrap_or_else(|error| panic!("an equality filter on {element} fails: {error}"));
        assert!(
            filter.matches(&room),
            "{element} is not found by an equality filter"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let kind = KINDS[usize::from(mode >> 1) % KINDS.len()];
    let array = mode & 0x10 != 0;
    if let Some(text) = text_mode(data) {
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            check(kind, array, &value);
        }
        return;
    }
    let mut u = Unstructured::new(rest);
    if let Ok(value) = json_value(&mut u, MAX_JSON_DEPTH - 2) {
        check(kind, array, &value);
    }
});
