//! The org and the acting principal of a request, from its metadata:
//!
//! | key | meaning |
//! |---|---|
//! | `x-roomd-org` | the org; `default` when absent |
//! | `x-roomd-account` | the acting account; absent means the calling service itself, `anonymous` a caller that is not signed in |
//! | `x-roomd-roles` | comma-separated roles of the principal |
//!
//! These headers are trusted only once [`crate::auth`] has authenticated
//! the caller, or when no authentication is configured and the server
//! listens on loopback addresses only.

use roomd_model::{Principal, RoomError, RoomResult, validate};
use tonic::metadata::MetadataMap;

pub const ORG_HEADER: &str = "x-roomd-org";
pub const ACCOUNT_HEADER: &str = "x-roomd-account";
pub const ROLES_HEADER: &str = "x-roomd-roles";
pub const DEFAULT_ORG: &str = "default";

/// The principal a request acts for, and its org.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub org: String,
    pub principal: Principal,
}

impl Caller {
    pub fn from_metadata(metadata: &MetadataMap) -> RoomResult<Self> {
        let org = header(metadata, ORG_HEADER)?.unwrap_or(DEFAULT_ORG);
        validate::identifier(ORG_HEADER, org)?;

        let roles = match header(metadata, ROLES_HEADER)? {
            None => Vec::new(),
            Some(text) => parse_roles(text)?,
        };
        let principal = match header(metadata, ACCOUNT_HEADER)? {
            None if roles.is_empty() => Principal::Service,
            None => {
                return Err(RoomError::validation(
                    ROLES_HEADER,
                    format!("needs {ACCOUNT_HEADER}; the calling service itself has no roles"),
                ));
            }
            Some("anonymous") => Principal::Anonymous { roles },
            Some(account) => {
                validate::account(ACCOUNT_HEADER, account)?;
                Principal::Account {
                    id: account.to_owned(),
                    roles,
                }
            }
        };
        Ok(Caller {
            org: org.to_owned(),
            principal,
        })
    }

    /// Returns the key under which per-caller limits (request rate, open
    /// watches) count this caller: the org plus the acting account, or
    /// `service` for the calling service itself. Every anonymous caller of
    /// an org shares one key.
    pub fn limit_key(&self) -> String {
        match &self.principal {
            Principal::Service => format!("{}/service", self.org),
            Principal::Account { id, .. } => format!("{}/account/{id}", self.org),
            Principal::Anonymous { .. } => format!("{}/anonymous", self.org),
        }
    }
}

impl Caller {
    /// Writes this caller as the metadata of a request that another node
    /// serves for it.
    pub fn write_metadata(&self, metadata: &mut MetadataMap) -> RoomResult<()> {
        let value = |key: &str, text: &str| {
            text.parse()
                .map_err(|_| RoomError::validation(key, "must be printable ASCII"))
        };
        metadata.insert(ORG_HEADER, value(ORG_HEADER, &self.org)?);
        let (account, roles) = match &self.principal {
            Principal::Service => return Ok(()),
            Principal::Account { id, roles } => (id.as_str(), roles),
            Principal::Anonymous { roles } => ("anonymous", roles),
        };
        metadata.insert(ACCOUNT_HEADER, value(ACCOUNT_HEADER, account)?);
        if !roles.is_empty() {
            metadata.insert(ROLES_HEADER, value(ROLES_HEADER, &roles.join(","))?);
        }
        Ok(())
    }
}

fn header<'a>(metadata: &'a MetadataMap, key: &str) -> RoomResult<Option<&'a str>> {
    match metadata.get(key) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|text| Some(text.trim()))
            .map_err(|_| RoomError::validation(key, "must be printable ASCII")),
    }
}

pub(crate) fn parse_roles(text: &str) -> RoomResult<Vec<String>> {
    let mut roles = Vec::new();
    for role in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        validate::identifier(ROLES_HEADER, role)?;
        if !roles.iter().any(|r| r == role) {
            roles.push(role.to_owned());
        }
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(pairs: &[(&'static str, &'static str)]) -> MetadataMap {
        let mut map = MetadataMap::new();
        for (key, value) in pairs {
            map.insert(*key, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn no_account_is_the_service() {
        let caller = Caller::from_metadata(&metadata(&[])).unwrap();
        assert_eq!(caller.org, "default");
        assert_eq!(caller.principal, Principal::Service);
    }

    #[test]
    fn account_with_roles() {
        let caller = Caller::from_metadata(&metadata(&[
            ("x-roomd-org", "clinic1"),
            ("x-roomd-account", "acc1"),
            ("x-roomd-roles", "developer, nurse,developer"),
        ]))
        .unwrap();
        assert_eq!(caller.org, "clinic1");
        assert_eq!(
            caller.principal,
            Principal::Account {
                id: "acc1".into(),
                roles: vec!["developer".into(), "nurse".into()]
            }
        );
    }

    #[test]
    fn limit_keys_separate_orgs_and_accounts() {
        let key = |pairs: &[(&'static str, &'static str)]| {
            Caller::from_metadata(&metadata(pairs)).unwrap().limit_key()
        };
        assert_eq!(key(&[]), "default/service");
        assert_eq!(
            key(&[("x-roomd-org", "o1"), ("x-roomd-account", "acc1")]),
            "o1/account/acc1"
        );
        assert_ne!(
            key(&[("x-roomd-org", "o1"), ("x-roomd-account", "acc1")]),
            key(&[("x-roomd-org", "o2"), ("x-roomd-account", "acc1")])
        );
        assert_eq!(
            key(&[("x-roomd-account", "anonymous")]),
            "default/anonymous"
        );
    }

    #[test]
    fn written_metadata_reads_back_as_the_same_caller() {
        let callers = [
            Caller {
                org: "clinic1".into(),
                principal: Principal::Service,
            },
            Caller {
                org: "clinic1".into(),
                principal: Principal::Account {
                    id: "acc1".into(),
                    roles: vec!["nurse".into(), "admin".into()],
                },
            },
            Caller {
                org: "default".into(),
                principal: Principal::Anonymous {
                    roles: vec!["guest".into()],
                },
            },
        ];
        for caller in callers {
            let mut metadata = MetadataMap::new();
            caller.write_metadata(&mut metadata).unwrap();
            assert_eq!(Caller::from_metadata(&metadata).unwrap(), caller);
        }
    }

    #[test]
    fn anonymous_and_bad_values() {
        let anonymous =
            Caller::from_metadata(&metadata(&[("x-roomd-account", "anonymous")])).unwrap();
        assert_eq!(anonymous.principal, Principal::Anonymous { roles: vec![] });

        for bad in [
            metadata(&[("x-roomd-account", "public")]),
            metadata(&[("x-roomd-account", "a b")]),
            metadata(&[("x-roomd-org", "")]),
            metadata(&[("x-roomd-roles", "dev")]),
        ] {
            let err = Caller::from_metadata(&bad).unwrap_err();
            assert_eq!(err.reason(), "invalidArgument.validation");
        }
    }
}
