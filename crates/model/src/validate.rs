//! Checks on identifiers and scalar fields shared by the other modules.

use crate::error::{RoomError, RoomResult};

pub use crate::limits::MAX_LABEL_CHARS;
pub const MAX_ID_CHARS: usize = 128;

/// Checks a human-readable label: 1 to `max_chars` characters, not only
/// white space.
pub fn label(path: &str, value: &str, max_chars: usize) -> RoomResult<()> {
    let chars = value.chars().count();
    if value.trim().is_empty() {
        return Err(RoomError::validation(path, "must not be empty"));
    }
    if chars > max_chars {
        return Err(RoomError::validation(
            path,
            format!("is {chars} characters long; the limit is {max_chars}"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(RoomError::validation(
            path,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Checks an account id, role name, org or request id: 1 to 128 characters
/// from ASCII letters, digits and `-_.@:+`.
pub fn identifier(path: &str, value: &str) -> RoomResult<()> {
    if value.is_empty() {
        return Err(RoomError::validation(path, "must not be empty"));
    }
    if value.len() > MAX_ID_CHARS {
        return Err(RoomError::validation(
            path,
            format!("is longer than {MAX_ID_CHARS} characters"),
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.@:+".contains(*c)))
    {
        return Err(RoomError::validation(
            path,
            format!("contains {bad:?}; use ASCII letters, digits and -_.@:+"),
        ));
    }
    Ok(())
}

/// Checks an account id: an identifier that is not one of the words that
/// ACL entries reserve (`public`, `anonymous`).
pub fn account(path: &str, value: &str) -> RoomResult<()> {
    identifier(path, value)?;
    if value == "public" || value == "anonymous" {
        return Err(RoomError::validation(
            path,
            format!("{value:?} is reserved and cannot name an account"),
        ));
    }
    Ok(())
}
