//! ACL entries: whatever parses prints back to the same text, parses again
//! to the same entry, survives the JSON form rooms are stored in, and
//! matches the principals it names.

#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use roomd_fuzz::{text_mode, word};
use roomd_model::acl::Grantee;
use roomd_model::{AclEntry, Level, Principal, RoomError};

const KINDS: &[&str] = &["account", "role", "owner", "group", ""];
const TARGETS: &[&str] = &[
    "acc1",
    "public",
    "anonymous",
    "jane.doe@example.org",
    "dev ops",
    "",
];
const LEVELS: &[&str] = &[
    "public",
    "connected",
    "reserved",
    "read",
    "share",
    "update",
    "delete",
    "admin",
    "",
];

/// Builds `kind.target.level`, `kind.level` or `kind` from likely pieces.
fn structured_entry(u: &mut Unstructured) -> arbitrary::Result<String> {
    let kind = word(u, KINDS)?;
    let target = word(u, TARGETS)?;
    let level = word(u, LEVELS)?;
    let text = match u.choose_index(3)? {
        0 => format!("{kind}.{target}.{level}"),
        1 => format!("{kind}.{level}"),
        _ => kind,
    };
    Ok(text)
}

fn check(text: &str) {
    let entry = match AclEntry::parse_at("acl[0]", text) {
        Ok(entry) => entry,
        Err(error) => {
            assert!(matches!(error, RoomError::Validation { ref path, .. } if path == "acl[0]"));
            return;
        }
    };

    let printed = entry.to_string();
    assert_eq!(printed, text, "a parsed entry prints differently");
    assert_eq!(printed.parse::<AclEntry>().as_ref(), Ok(&entry));

    let json = serde_json::to_string(&entry).expect("an entry serializes");
    let loaded: AclEntry = serde_json::from_str(&json).expect("a stored entry loads");
    assert_eq!(loaded, entry);

    assert_eq!(
        Principal::Service.access_level(std::slice::from_ref(&entry), None),
        Some(Level::Delete)
    );
    let named = match &entry.grantee {
        Grantee::Account(id) => Some(Principal::account(id.as_str())),
        Grantee::Role(role) => Some(Principal::Account {
            id: "someone".to_owned(),
            roles: vec![role.clone()],
        }),
        Grantee::Public => Some(Principal::account("someone")),
        Grantee::Anonymous => Some(Principal::Anonymous { roles: Vec::new() }),
        Grantee::Owner => None,
    };
    if let Some(principal) = named {
        assert_eq!(
            principal.access_level(std::slice::from_ref(&entry), None),
            Some(entry.level),
            "{entry} does not match the principal it names"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(text) = text_mode(data) {
        check(text);
        return;
    }
    let mut u = Unstructured::new(data.get(1..).unwrap_or_default());
    if let Ok(text) = structured_entry(&mut u) {
        check(&text);
    }
});
