//! Mapping of Redis client errors to [`StoreError`], and the redaction of
//! passwords from Redis URLs.

use redis::{ErrorKind, RedisError};

use crate::StoreError;

/// Error codes with which Redis rejects a command before it runs, so a
/// write that failed with one of them applied nothing.
const REJECTED_BEFORE_RUNNING: &[&str] = &[
    "BUSY",
    "CLUSTERDOWN",
    "LOADING",
    "MASTERDOWN",
    "NOAUTH",
    "NOPERM",
    "NOSCRIPT",
    "OOM",
    "READONLY",
    "TRYAGAIN",
    "WRONGPASS",
];

/// Maps the failure of a read. A read changes nothing, so every connection
/// failure is [`StoreError::Unavailable`]. A reply of the wrong type means
/// that a key contains data this store did not write, which is
/// [`StoreError::Corrupt`].
pub(super) fn read_error(error: RedisError, action: &str) -> StoreError {
    if is_wrong_data(&error) {
        return StoreError::Corrupt(format!("{action}: {error}"));
    }
    StoreError::Unavailable(format!("{action} failed: {error}"))
}

/// Maps the failure of a write. Only a write that certainly did not reach
/// Redis, or that Redis rejected before running it, is
/// [`StoreError::Unavailable`]. A write whose reply was lost (timeout,
/// dropped connection) may have applied and is [`StoreError::Ambiguous`].
pub(super) fn write_error(error: RedisError, action: &str) -> StoreError {
    if is_wrong_data(&error) {
        return StoreError::Corrupt(format!("{action}: {error}"));
    }
    if was_not_sent(&error) || was_rejected(&error) {
        return StoreError::Unavailable(format!("{action} failed: {error}"));
    }
    StoreError::Ambiguous(format!("{action} may or may not have applied: {error}"))
}

/// Tells whether the command never left the client: the connection could
/// not be made, or the client refused the request itself.
pub(super) fn was_not_sent(error: &RedisError) -> bool {
    error.is_connection_refusal()
        || matches!(
            error.kind(),
            ErrorKind::InvalidClientConfig
                | ErrorKind::AuthenticationFailed
                | ErrorKind::Client
                | ErrorKind::RESP3NotSupported
        )
}

fn was_rejected(error: &RedisError) -> bool {
    error
        .code()
        .is_some_and(|code| REJECTED_BEFORE_RUNNING.contains(&code))
}

/// Tells whether Redis replied, but with data of another type than this
/// store writes.
fn is_wrong_data(error: &RedisError) -> bool {
    error.code() == Some("WRONGTYPE") || error.kind() == ErrorKind::UnexpectedReturnType
}

/// Returns `url` with any password replaced by `***`, for messages and
/// logs. Covers the password in the user info (`redis://user:pw@host`), a
/// user info that is a bare password, and every query parameter
/// (`redis+unix:///socket?pass=pw`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<invalid URL>".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, _query)) => format!("{path}?***"),
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn redact_keeps_url_without_password() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact_url("redis://localhost"), "redis://localhost");
    }

    #[test]
    fn redact_hides_passwords() {
        let cases = [
            (
                "redis://user:s3cret@127.0.0.1:6379",
                "redis://user:***@127.0.0.1:6379",
            ),
            ("rediss://:s3cret@127.0.0.1/2", "rediss://:***@127.0.0.1/2"),
            ("redis://s3cret@127.0.0.1", "redis://***@127.0.0.1"),
            ("redis://u:p@ss:w@rd@127.0.0.1", "redis://u:***@127.0.0.1"),
            (
                "redis+unix:///tmp/redis.sock?pass=s3cret",
                "redis+unix:///tmp/redis.sock?***",
            ),
        ];
        for (url, expected) in cases {
            let redacted = redact_url(url);
            assert_eq!(redacted, expected, "redacting {url}");
            assert!(
                !redacted.contains("s3cret"),
                "{redacted} shows the password"
            );
        }
    }

    #[test]
    fn redact_hides_unparsable_url() {
        assert_eq!(redact_url("user:s3cret@127.0.0.1"), "<invalid URL>");
    }

    #[test]
    fn refused_write_is_unavailable() {
        let error = RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            write_error(error, "commit"),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn lost_write_reply_is_ambiguous() {
        for kind in [
            io::ErrorKind::TimedOut,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::UnexpectedEof,
        ] {
            let error = RedisError::from(io::Error::from(kind));
            assert!(
                matches!(write_error(error, "commit"), StoreError::Ambiguous(_)),
                "{kind:?} after sending must be ambiguous"
            );
        }
    }

    #[test]
    fn lost_read_reply_is_unavailable() {
        let error = RedisError::from(io::Error::from(io::ErrorKind::TimedOut));
        assert!(matches!(
            read_error(error, "load"),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn wrong_reply_type_is_corrupt() {
        let error = RedisError::from((ErrorKind::UnexpectedReturnType, "not a string"));
        assert!(matches!(
            read_error(error.clone(), "load"),
            StoreError::Corrupt(_)
        ));
        assert!(matches!(
            write_error(error, "commit"),
            StoreError::Corrupt(_)
        ));
    }
}
