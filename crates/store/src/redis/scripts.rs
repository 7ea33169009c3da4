//! The Lua scripts that apply each write atomically, and the parsing of
//! their replies.
//!
//! Every script returns an array of strings whose first element names the
//! outcome (`OK`, `FENCED`, ...). The comment at the top of each `.lua` file
//! lists its keys, arguments and outcomes.

use std::sync::LazyLock;

use redis::Script;

use crate::StoreError;

pub(super) static CREATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("create.lua")));
pub(super) static COMMIT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("commit.lua")));
pub(super) static DELETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("delete.lua")));
pub(super) static CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("claim.lua")));
pub(super) static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("release.lua")));
pub(super) static RENEW: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("renew.lua")));
pub(super) static FORGET: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("forget.lua")));

/// The outcome of a script, as its reply names it.
#[derive(Debug, PartialEq)]
pub(super) enum Outcome {
    Ok,
    New,
    Existing(String),
    OpenLimit,
    Missing,
    Fenced,
    Version(u64),
    Won(String),
    Lost,
    Expired,
    Forgotten,
    Kept,
}

/// Parses a script reply. An unknown reply means that the script and this
/// code disagree, which is reported as [`StoreError::Corrupt`].
pub(super) fn parse_outcome(reply: Vec<String>, script: &str) -> Result<Outcome, StoreError> {
    let mut parts = reply.into_iter();
    let status = parts.next().unwrap_or_default();
    let mut value = || {
        parts.next().ok_or_else(|| {
            StoreError::Corrupt(format!(
                "the {script} script returned {status} without a value"
            ))
        })
    };
    let outcome = match status.as_str() {
        "OK" => Outcome::Ok,
        "NEW" => Outcome::New,
        "EXISTING" => Outcome::Existing(value()?),
        "OPEN_LIMIT" => Outcome::OpenLimit,
        "MISSING" => Outcome::Missing,
        "FENCED" => Outcome::Fenced,
        "VERSION" => {
            let stored = value()?;
            let version = stored.parse().map_err(|_| {
                StoreError::Corrupt(format!("stored room version {stored:?} is not a number"))
            })?;
            Outcome::Version(version)
        }
        "WON" => Outcome::Won(value()?),
        "LOST" => Outcome::Lost,
        "EXPIRED" => Outcome::Expired,
        "FORGOTTEN" => Outcome::Forgotten,
        "KEPT" => Outcome::Kept,
        _ => {
            return Err(StoreError::Corrupt(format!(
                "the {script} script returned the unknown outcome {status:?}"
            )));
        }
    };
    Ok(outcome)
}

/// Builds the error for an outcome that the calling operation does not
/// expect from its script.
pub(super) fn unexpected(outcome: Outcome, script: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "the {script} script returned the unexpected outcome {outcome:?}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|part| part.to_string()).collect()
    }

    #[test]
    fn outcomes_parse_with_values() {
        assert_eq!(parse_outcome(reply(&["OK"]), "commit"), Ok(Outcome::Ok));
        assert_eq!(
            parse_outcome(reply(&["VERSION", "7"]), "commit"),
            Ok(Outcome::Version(7))
        );
        assert_eq!(
            parse_outcome(reply(&["EXISTING", "{}"]), "create"),
            Ok(Outcome::Existing("{}".into()))
        );
    }

    #[test]
    fn bad_outcomes_are_corrupt() {
        let cases: [&[&str]; 4] = [&[], &["SURPRISE"], &["VERSION"], &["VERSION", "seven"]];
        for parts in cases {
            let result = parse_outcome(reply(parts), "commit");
            assert!(
                matches!(result, Err(StoreError::Corrupt(_))),
                "{parts:?} parsed as {result:?}"
            );
        }
    }
}
