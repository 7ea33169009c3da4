//! Access control entries of the form `type.target.level`.
//!
//! | entry | matches |
//! |---|---|
//! | `account.<id>.<level>` | that account |
//! | `account.public.<level>` | any signed-in account of the org |
//! | `account.anonymous.<level>` | any caller, signed in or not |
//! | `role.<name>.<level>` | any principal holding that role |
//! | `owner.<level>` | the room's owner |
//!
//! A principal's access is the highest level among the entries that match
//! it. The calling service itself, acting for no account, has full access.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{RoomError, RoomResult};
use crate::validate;

/// Access levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Public = 1,
    Connected = 2,
    Reserved = 3,
    Read = 4,
    Share = 5,
    Update = 6,
    Delete = 7,
}

impl Level {
    pub const ALL: [Level; 7] = [
        Level::Public,
        Level::Connected,
        Level::Reserved,
        Level::Read,
        Level::Share,
        Level::Update,
        Level::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Public => "public",
            Level::Connected => "connected",
            Level::Reserved => "reserved",
            Level::Read => "read",
            Level::Share => "share",
            Level::Update => "update",
            Level::Delete => "delete",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|level| level.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown level {s:?}; expected public, connected, reserved, read, share, update or delete"
                )
            })
    }
}

/// The principal or group of principals an ACL entry applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Grantee {
    Account(String),
    Public,
    Anonymous,
    Role(String),
    Owner,
}

/// One parsed ACL entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AclEntry {
    pub grantee: Grantee,
    pub level: Level,
}

impl AclEntry {
    pub fn new(grantee: Grantee, level: Level) -> Self {
        AclEntry { grantee, level }
    }

    /// Parses an entry, reporting a fault at `path` when it is malformed.
    pub fn parse_at(path: &str, text: &str) -> RoomResult<Self> {
        text.parse()
            .map_err(|message: String| RoomError::validation(path, message))
    }

    /// Tells whether this entry applies to `principal` in a room owned by
    /// `owner`.
    pub fn matches(&self, principal: &Principal, owner: Option<&str>) -> bool {
        match (&self.grantee, principal) {
            (_, Principal::Service) => true,
            (Grantee::Anonymous, _) => true,
            (Grantee::Role(role), _) => principal.roles().iter().any(|r| r == role),
            (Grantee::Public, Principal::Account { .. }) => true,
            (Grantee::Account(id), Principal::Account { id: caller, .. }) => id == caller,
            (Grantee::Owner, Principal::Account { id: caller, .. }) => {
                owner == Some(caller.as_str())
            }
            (
                Grantee::Public | Grantee::Account(_) | Grantee::Owner,
                Principal::Anonymous { .. },
            ) => false,
        }
    }
}

impl fmt::Display for AclEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.grantee {
            Grantee::Account(id) => write!(f, "account.{id}.{}", self.level),
            Grantee::Public => write!(f, "account.public.{}", self.level),
            Grantee::Anonymous => write!(f, "account.anonymous.{}", self.level),
            Grantee::Role(name) => write!(f, "role.{name}.{}", self.level),
            Grantee::Owner => write!(f, "owner.{}", self.level),
        }
    }
}

impl FromStr for AclEntry {
    type Err = String;

    /// Parses `type.target.level`. The target sits between the first and the
    /// last dot, so account ids and role names may themselves contain dots.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = text.split_once('.').ok_or_else(|| {
            format!("ACL entry {text:?} is not of the form type.target.level or owner.level")
        })?;

        if kind == "owner" {
            let level = rest.parse()?;
            return Ok(AclEntry::new(Grantee::Owner, level));
        }

        let (target, level) = rest
            .rsplit_once('.')
            .ok_or_else(|| format!("ACL entry {text:?} is missing its level"))?;
        let level: Level = level.parse()?;

        let grantee = match (kind, target) {
            ("account", "public") => Grantee::Public,
            ("account", "anonymous") => Grantee::Anonymous,
            ("account", id) => {
                validate::identifier("acl", id).map_err(|e| format!("account id: {e}"))?;
                Grantee::Account(id.to_owned())
            }
            ("role", name) => {
                validate::identifier("acl", name).map_err(|e| format!("role name: {e}"))?;
                Grantee::Role(name.to_owned())
            }
            (other, _) => {
                return Err(format!(
                    "unknown ACL entry type {other:?}; expected account, role or owner"
                ));
            }
        };
        Ok(AclEntry::new(grantee, level))
    }
}

impl Serialize for AclEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AclEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The identity a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The calling service itself, acting for no account: full access.
    Service,
    /// A signed-in account of the org.
    Account { id: String, roles: Vec<String> },
    /// A caller that is not signed in.
    Anonymous { roles: Vec<String> },
}

impl Principal {
    pub fn account(id: impl Into<String>) -> Self {
        Principal::Account {
            id: id.into(),
            roles: Vec::new(),
        }
    }

    pub fn roles(&self) -> &[String] {
        match self {
            Principal::Service => &[],
            Principal::Account { roles, .. } | Principal::Anonymous { roles } => roles,
        }
    }

    /// Returns the acting account id, if the principal is a signed-in account.
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Principal::Account { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Returns the principal's access under `acl` in a room owned by `owner`,
    /// or `None` when no entry matches.
    pub fn access_level(&self, acl: &[AclEntry], owner: Option<&str>) -> Option<Level> {
        if *self == Principal::Service {
            return Some(Level::Delete);
        }
        acl.iter()
            .filter(|entry| entry.matches(self, owner))
            .map(|entry| entry.level)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[&str]) -> Vec<AclEntry> {
        entries.iter().map(|e| e.parse().unwrap()).collect()
    }

    #[test]
    fn parse_each_entry_type() {
        assert_eq!(
            "account.acc1.read".parse::<AclEntry>().unwrap(),
            AclEntry::new(Grantee::Account("acc1".into()), Level::Read)
        );
        assert_eq!(
            "account.public.share".parse::<AclEntry>().unwrap().grantee,
            Grantee::Public
        );
        assert_eq!(
            "account.anonymous.read"
                .parse::<AclEntry>()
                .unwrap()
                .grantee,
            Grantee::Anonymous
        );
        assert_eq!(
            "role.developer.update".parse::<AclEntry>().unwrap(),
            AclEntry::new(Grantee::Role("developer".into()), Level::Update)
        );
        assert_eq!(
            "owner.delete".parse::<AclEntry>().unwrap(),
            AclEntry::new(Grantee::Owner, Level::Delete)
        );
    }

    #[test]
    fn parse_account_id_with_dots() {
        let entry: AclEntry = "account.jane.doe@example.org.read".parse().unwrap();
        assert_eq!(
            entry.grantee,
            Grantee::Account("jane.doe@example.org".into())
        );
        assert_eq!(entry.to_string(), "account.jane.doe@example.org.read");
    }

    #[test]
    fn parse_rejects_malformed_entries() {
        for bad in [
            "",
            "account",
            "account.acc1",
            "account..read",
            "account.acc1.admin",
            "group.x.read",
            "owner",
            "owner.root",
            "role.dev ops.read",
        ] {
            assert!(bad.parse::<AclEntry>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn access_takes_highest_matching_level() {
        let entries = acl(&[
            "account.acc1.read",
            "role.dev.update",
            "account.public.connected",
        ]);
        let principal = Principal::Account {
            id: "acc1".into(),
            roles: vec!["dev".into()],
        };
        assert_eq!(principal.access_level(&entries, None), Some(Level::Update));
        assert_eq!(
            Principal::account("acc2").access_level(&entries, None),
            Some(Level::Connected)
        );
    }

    #[test]
    fn anonymous_matches_only_anonymous_and_roles() {
        let entries = acl(&[
            "account.public.delete",
            "owner.delete",
            "account.anonymous.read",
        ]);
        let anonymous = Principal::Anonymous { roles: vec![] };
        assert_eq!(
            anonymous.access_level(&entries, Some("x")),
            Some(Level::Read)
        );
        assert_eq!(
            anonymous.access_level(&acl(&["account.public.read"]), None),
            None
        );
    }

    #[test]
    fn owner_entry_matches_only_owner() {
        let entries = acl(&["owner.delete"]);
        assert_eq!(
            Principal::account("boss").access_level(&entries, Some("boss")),
            Some(Level::Delete)
        );
        assert_eq!(
            Principal::account("other").access_level(&entries, Some("boss")),
            None
        );
        assert_eq!(
            Principal::account("boss").access_level(&entries, None),
            None
        );
    }

    #[test]
    fn service_has_full_access() {
        assert_eq!(
            Principal::Service.access_level(&[], None),
            Some(Level::Delete)
        );
    }
}
