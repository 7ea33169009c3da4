//! Property tests of the model: closed rooms stay closed, rejected update
//! documents change nothing, and ACL entries print and parse back to
//! themselves.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use roomd_model::acl::Grantee;
use roomd_model::definition::{PropertyDefinition, PropertyType};
use roomd_model::{
    AclEntry, Level, NewRoom, Principal, Room, RoomDefaults, RoomDefinition, RoomId, RoomState,
    UpdateDocument,
};
use serde_json::{Value, json};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .into()
}

fn definition() -> RoomDefinition {
    let property = |name: &str, kind, array| PropertyDefinition {
        name: name.into(),
        label: name.into(),
        kind,
        array,
        indexed: true,
    };
    RoomDefinition::new(
        "org1",
        "Room",
        &[],
        vec![
            property("c_number", PropertyType::Number, false),
            property("c_tags", PropertyType::String, true),
            property("c_when", PropertyType::Date, false),
        ],
    )
    .unwrap()
}

fn open_room() -> Room {
    let request = NewRoom {
        label: "Visit".into(),
        acl: vec!["account.public.read".into(), "account.sharer.share".into()],
        open: true,
        ..NewRoom::default()
    };
    Room::create(
        RoomId::generate(),
        "org1",
        request,
        &definition(),
        &RoomDefaults::default(),
        &roomd_model::Limits::default(),
        &Principal::account("owner1"),
        t0(),
    )
    .unwrap()
    .0
}

fn identifier() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9_.@:+-]{0,20}".prop_filter("reserved word", |id| {
        id != "public" && id != "anonymous" && !id.ends_with('.')
    })
}

fn level() -> impl Strategy<Value = Level> {
    proptest::sample::select(Level::ALL.to_vec())
}

fn acl_entry() -> impl Strategy<Value = AclEntry> {
    let grantee = prop_oneof![
        identifier().prop_map(Grantee::Account),
        Just(Grantee::Public),
        Just(Grantee::Anonymous),
        identifier().prop_map(Grantee::Role),
        Just(Grantee::Owner),
    ];
    (grantee, level()).prop_map(|(grantee, level)| AclEntry::new(grantee, level))
}

/// JSON values of every shape, valid for some paths and not for others.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|n| json!(n)),
        proptest::sample::select(vec![
            "open",
            "closed",
            "new",
            "x",
            "",
            "account.acc2.read",
            "owner.delete",
            "role.dev.update",
            "2026-02-01T00:00:00Z",
            "not-an-acl",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn path() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "label",
        "state",
        "acl",
        "owner",
        "configuration",
        "configuration.maxParticipants",
        "configuration.unusedTimeout",
        "configuration.emptyTimeout",
        "configuration.maxDuration",
        "configuration.openAt",
        "c_number",
        "c_tags",
        "c_when",
        "c_unknown",
        "participants",
    ])
    .prop_map(str::to_owned)
}

fn operator() -> impl Strategy<Value = String> {
    proptest::sample::select(vec!["$set", "$unset", "$push", "$pull", "$inc"])
        .prop_map(str::to_owned)
}

/// Update documents of one to three operators over the writable paths and
/// some that are not writable.
fn update_document() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        operator(),
        prop::collection::btree_map(path(), json_value(), 1..3),
        1..3,
    )
    .prop_map(|operators| {
        Value::Object(
            operators
                .into_iter()
                .map(|(op, fields)| (op, Value::Object(fields.into_iter().collect())))
                .collect(),
        )
    })
}

fn principal() -> impl Strategy<Value = Principal> {
    prop_oneof![
        Just(Principal::Service),
        Just(Principal::account("owner1")),
        Just(Principal::account("sharer")),
        Just(Principal::account("reader")),
        Just(Principal::Anonymous { roles: vec![] }),
    ]
}

/// A step in a room's life: an update document, a join, a leave, a close,
/// or time passing so that timers fire.
#[derive(Debug, Clone)]
enum Step {
    Update(Principal, Value),
    Join(String),
    Leave(String),
    Close,
    Wait(i64),
}

fn step() -> impl Strategy<Value = Step> {
    let account = proptest::sample::select(vec!["a", "b", "c"]).prop_map(str::to_owned);
    prop_oneof![
        3 => (principal(), update_document()).prop_map(|(p, doc)| Step::Update(p, doc)),
        2 => account.clone().prop_map(Step::Join),
        1 => account.prop_map(Step::Leave),
        1 => Just(Step::Close),
        1 => (0i64..1000).prop_map(Step::Wait),
    ]
}

fn apply(room: &mut Room, step: &Step, now: DateTime<Utc>) {
    let definition = definition();
    let _ = match step {
        Step::Update(principal, doc) => UpdateDocument::from_value(doc).and_then(|document| {
            room.update(
                principal,
                &document,
                &definition,
                &roomd_model::Limits::default(),
                None,
                now,
            )
        }),
        Step::Join(account) => room.join(&Principal::account(account.as_str()), None, now),
        Step::Leave(account) => room.leave(&Principal::account(account.as_str()), None, now),
        Step::Close => room.close(&Principal::Service, now),
        Step::Wait(_) => Ok(room.fire_due_timer(now)),
    };
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn acl_entry_prints_and_parses_back(entry in acl_entry()) {
        let text = entry.to_string();
        let parsed: AclEntry = text.parse().unwrap();
        prop_assert_eq!(&parsed, &entry);
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn rejected_document_changes_nothing(principal in principal(), doc in update_document()) {
        let mut room = open_room();
        let before = room.clone();
        let result = UpdateDocument::from_value(&doc)
            .and_then(|document| room.update(&principal, &document, &definition(), &roomd_model::Limits::default(), None, t0()));
        if result.is_err() {
            prop_assert_eq!(&room, &before);
        } else {
            prop_assert!(room.version >= before.version);
        }
    }

    #[test]
    fn no_document_reopens_closed_room(principal in principal(), doc in update_document()) {
        let mut room = open_room();
        room.close(&Principal::Service, t0()).unwrap();
        let before = room.clone();
        let result = UpdateDocument::from_value(&doc)
            .and_then(|document| room.update(&principal, &document, &definition(), &roomd_model::Limits::default(), None, t0()));
        prop_assert!(result.is_err());
        prop_assert_eq!(&room, &before);
    }

    #[test]
    fn closed_room_stays_closed_through_any_steps(steps in prop::collection::vec(step(), 1..30)) {
        let mut room = open_room();
        let mut now = t0();
        let mut closed_at = None;
        for step in &steps {
            if let Step::Wait(secs) = step {
                now += Duration::seconds(*secs);
            }
            apply(&mut room, step, now);
            if room.state == RoomState::Closed {
                closed_at.get_or_insert_with(|| room.clone());
            }
            if let Some(closed) = &closed_at {
                prop_assert_eq!(&room, closed);
            }
            prop_assert!(room.connected_count() <= room.configuration.max_participants as usize);
        }
    }
}
