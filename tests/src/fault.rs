//! Reading roomd faults from failed calls: the gRPC code, the
//! `google.rpc.ErrorInfo` and the `google.rpc.BadRequest` fields.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorInfo, StatusExt};

/// A roomd fault as a client sees it: the gRPC code plus the details.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub code: Code,
    pub message: String,
    /// `ErrorInfo.reason`, for example `accessDenied.read`.
    pub reason: String,
    /// `ErrorInfo.domain`; `roomd` for every fault of roomd.
    pub domain: String,
    /// `ErrorInfo.metadata`, for example `roomId` or `path`.
    pub metadata: HashMap<String, String>,
    /// Fields named by the `BadRequest` field violations, in order.
    pub fields: Vec<String>,
}

impl Fault {
    /// Reads the fault from a status.
    ///
    /// # Panics
    /// When the status carries no `google.rpc.ErrorInfo`, which every roomd
    /// fault must.
    pub fn from_status(status: &Status) -> Self {
        let info = error_info(status);
        Fault {
            code: status.code(),
            message: status.message().to_owned(),
            reason: info.reason,
            domain: info.domain,
            metadata: info.metadata,
            fields: bad_request_fields(status),
        }
    }

    /// Returns the `ErrorInfo` metadata value under `key`, or `""`.
    pub fn meta(&self, key: &str) -> &str {
        self.metadata.get(key).map_or("", String::as_str)
    }

    /// Asserts the fault's code and reason, the `roomd` domain, and each of
    /// the `expected_metadata` entries.
    #[track_caller]
    pub fn assert_is(&self, code: Code, reason: &str, expected_metadata: &[(&str, &str)]) {
        assert_eq!(self.code, code, "gRPC code of {self:?}");
        assert_eq!(self.reason, reason, "reason of {self:?}");
        assert_eq!(self.domain, "roomd", "domain of {self:?}");
        for (key, value) in expected_metadata {
            assert_eq!(
                self.metadata.get(*key).map(String::as_str),
                Some(*value),
                "metadata {key:?} of {self:?}"
            );
        }
    }

    /// Asserts the fault's code and reason, the `roomd` domain, and that its
    /// `roomId` metadata names `room_id`.
    #[track_caller]
    pub fn assert_for_room(&self, code: Code, reason: &str, room_id: &str) {
        self.assert_is(code, reason, &[("roomId", room_id)]);
    }

    /// Asserts a validation fault: `INVALID_ARGUMENT`, reason
    /// `invalidArgument.validation`, and `path` both in the metadata and as
    /// the only `BadRequest` field.
    #[track_caller]
    pub fn assert_invalid(&self, path: &str) {
        self.assert_is(
            Code::InvalidArgument,
            "invalidArgument.validation",
            &[("path", path)],
        );
        assert_eq!(self.fields, [path], "BadRequest fields of {self:?}");
    }
}

/// Returns the fault of a call that must fail.
///
/// # Panics
/// When the call succeeded, or failed without an `ErrorInfo`.
#[track_caller]
pub fn expect_fault<T: std::fmt::Debug>(result: Result<tonic::Response<T>, Status>) -> Fault {
    match result {
        Ok(response) => panic!("expected a fault, got {:?}", response.get_ref()),
        Err(status) => Fault::from_status(&status),
    }
}

/// Returns the status's `google.rpc.ErrorInfo`.
///
/// # Panics
/// When the status carries none.
pub fn error_info(status: &Status) -> ErrorInfo {
    status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("status has no ErrorInfo: {status:?}"))
}

/// Returns the fields named by the status's `google.rpc.BadRequest` field
/// violations; empty when it carries none.
pub fn bad_request_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|bad_request| {
            bad_request
                .field_violations
                .into_iter()
                .map(|violation| violation.field)
                .collect()
        })
        .unwrap_or_default()
}
