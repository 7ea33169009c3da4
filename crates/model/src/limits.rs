//! Limits on the size and shape of requests, and on the load that one caller
//! may put on a node. The model checks the shape limits: labels, ACLs,
//! custom properties, filters and page size. The server enforces request
//! size, watchers and request rate with the same values.

use crate::error::{RoomError, RoomResult};

/// Maximum number of characters in a room label, whatever the configured
/// limit.
pub const MAX_LABEL_CHARS: usize = 200;
/// Maximum `FindRooms` page size, whatever the configured limit.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Maximum `$and`/`$or` nesting depth of a filter, whatever the configured
/// limit, so that parsing a filter cannot recurse without bound.
pub const MAX_FILTER_DEPTH: usize = 16;

/// The limits a node applies. [`Limits::default`] returns the production
/// defaults, and flags of the `roomd` binary change them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum size of a request message that the server decodes, in bytes.
    pub max_request_bytes: usize,
    /// Maximum number of characters in a room label, at most [`MAX_LABEL_CHARS`].
    pub max_label_chars: usize,
    /// Maximum number of entries in a room's ACL.
    pub max_acl_entries: usize,
    /// Maximum number of custom (`c_*`) properties set on one room.
    pub max_custom_properties: usize,
    /// Maximum number of characters in one custom string value or array item.
    pub max_custom_value_chars: usize,
    /// Maximum number of items in one custom array value.
    pub max_custom_array_items: usize,
    /// Maximum `$and`/`$or` nesting depth of a filter, at most
    /// [`MAX_FILTER_DEPTH`].
    pub max_filter_depth: usize,
    /// Maximum number of JSON values (objects, arrays and scalars, each
    /// counted once) in a filter.
    pub max_filter_nodes: usize,
    /// Maximum `FindRooms` page size, at most [`MAX_PAGE_SIZE`].
    pub max_page_size: u32,
    /// Maximum number of open watches of one room on one node.
    pub max_watchers_per_room: usize,
    /// Maximum number of open watches of one caller on one node.
    pub max_watchers_per_caller: usize,
    /// Requests per second that one caller may make to one node, on average.
    pub requests_per_second: u32,
    /// Requests that one caller may make at once before the rate applies.
    pub request_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 1024 * 1024,
            max_label_chars: MAX_LABEL_CHARS,
            max_acl_entries: 100,
            max_custom_properties: 50,
            max_custom_value_chars: 4096,
            max_custom_array_items: 100,
            max_filter_depth: 8,
            max_filter_nodes: 100,
            max_page_size: MAX_PAGE_SIZE,
            max_watchers_per_room: 1000,
            max_watchers_per_caller: 100,
            requests_per_second: 500,
            request_burst: 1000,
        }
    }
}

impl Limits {
    /// Checks that every limit is at least 1 and that none goes above its
    /// ceiling.
    pub fn check(&self) -> RoomResult<()> {
        let bounded = [
            ("maxLabelChars", self.max_label_chars, MAX_LABEL_CHARS),
            (
                "maxPageSize",
                self.max_page_size as usize,
                MAX_PAGE_SIZE as usize,
            ),
            ("maxFilterDepth", self.max_filter_depth, MAX_FILTER_DEPTH),
        ];
        for (name, value, ceiling) in bounded {
            if !(1..=ceiling).contains(&value) {
                return Err(RoomError::validation(
                    name,
                    format!("{value} is outside 1 to {ceiling}"),
                ));
            }
        }

        let unbounded = [
            ("maxRequestBytes", self.max_request_bytes),
            ("maxAclEntries", self.max_acl_entries),
            ("maxCustomProperties", self.max_custom_properties),
            ("maxCustomValueChars", self.max_custom_value_chars),
            ("maxCustomArrayItems", self.max_custom_array_items),
            ("maxFilterNodes", self.max_filter_nodes),
            ("maxWatchersPerRoom", self.max_watchers_per_room),
            ("maxWatchersPerCaller", self.max_watchers_per_caller),
            ("requestsPerSecond", self.requests_per_second as usize),
            ("requestBurst", self.request_burst as usize),
        ];
        for (name, value) in unbounded {
            if value == 0 {
                return Err(RoomError::validation(name, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// Checks that a collection at `path` grows to at most `max` entries.
    /// A change that does not add entries passes, so that a room stored
    /// under a higher limit can still shrink.
    pub(crate) fn check_growth(
        path: &str,
        before: usize,
        after: usize,
        max: usize,
    ) -> RoomResult<()> {
        if after > max && after > before {
            return Err(RoomError::validation(
                path,
                format!("would have {after} entries; the limit is {max}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_their_own_check() {
        assert_eq!(Limits::default().check(), Ok(()));
    }

    #[test]
    fn ceilings_are_enforced() {
        let cases = [
            (
                Limits {
                    max_label_chars: MAX_LABEL_CHARS + 1,
                    ..Limits::default()
                },
                "maxLabelChars",
            ),
            (
                Limits {
                    max_page_size: MAX_PAGE_SIZE + 1,
                    ..Limits::default()
                },
                "maxPageSize",
            ),
            (
                Limits {
                    max_filter_depth: MAX_FILTER_DEPTH + 1,
                    ..Limits::default()
                },
                "maxFilterDepth",
            ),
            (
                Limits {
                    request_burst: 0,
                    ..Limits::default()
                },
                "requestBurst",
            ),
            (
                Limits {
                    max_watchers_per_room: 0,
                    ..Limits::default()
                },
                "maxWatchersPerRoom",
            ),
        ];
        for (limits, path) in cases {
            let err = limits.check().unwrap_err();
            assert_eq!(err.metadata(), vec![("path", path.to_string())], "{path}");
        }
    }

    #[test]
    fn growth_at_and_over_the_limit() {
        assert_eq!(Limits::check_growth("acl", 1, 3, 3), Ok(()));
        let err = Limits::check_growth("acl", 1, 4, 3).unwrap_err();
        assert_eq!(err.metadata(), vec![("path", "acl".to_string())]);
        assert!(err.to_string().contains("the limit is 3"), "{err}");
    }

    #[test]
    fn shrinking_above_the_limit_passes() {
        assert_eq!(Limits::check_growth("acl", 10, 9, 3), Ok(()));
    }
}
