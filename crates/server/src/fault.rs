//! The one mapping from room faults to gRPC statuses.
//!
//! Every status carries a `google.rpc.ErrorInfo` with domain `roomd`, the
//! fault's dotted reason and its metadata (`roomId`, `path`, ...), and
//! validation faults also carry a `google.rpc.BadRequest` field violation.

use std::collections::HashMap;

use roomd_model::RoomError;

use crate::auth::AuthError;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tracing::{debug, info, warn};

pub const DOMAIN: &str = "roomd";

/// Maximum bytes of each text a fault carries: its message, and each
/// metadata value and field name. Messages quote the bad value, and a fault
/// travels in HTTP/2 headers. hyper 1.x clients reject a header list above
/// 16 KiB by default, so a fault that quoted a 10,000-character room id whole
/// reached the client as a protocol error.
pub const MAX_FAULT_TEXT_BYTES: usize = 1024;

/// Start of the message tonic 0.14 sends, with `OUT_OF_RANGE`, for a request
/// larger than the decoding limit.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

/// Start of prost's message for bytes that are not a valid message, which
/// tonic 0.14 sends with `INTERNAL`.
const PROST_DECODE_FAILED: &str = "failed to decode Protobuf message: ";

/// Message tonic 0.14 sends, with `INTERNAL`, when a request body ends inside
/// a gRPC message frame.
const TONIC_TRUNCATED_FRAME: &str = "Unexpected EOF decoding stream.";

pub fn code(error: &RoomError) -> Code {
    match error {
        RoomError::RoomNotFound { .. } | RoomError::DefinitionNotFound { .. } => Code::NotFound,
        RoomError::AccessDenied { .. }
        | RoomError::DefinitionAccessDenied { .. }
        | RoomError::ChaosAccessDenied { .. } => Code::PermissionDenied,
        RoomError::Unauthenticated { .. } => Code::Unauthenticated,
        RoomError::Validation { .. } => Code::InvalidArgument,
        RoomError::Closed { .. } | RoomError::NotOpen { .. } | RoomError::Transition { .. } => {
            Code::FailedPrecondition
        }
        RoomError::MaxParticipants { .. }
        | RoomError::MaxOpenRooms { .. }
        | RoomError::RoomWatchers { .. }
        | RoomError::CallerWatchers { .. }
        | RoomError::RateLimited { .. }
        | RoomError::RequestTooLarge { .. } => Code::ResourceExhausted,
        RoomError::VersionConflict { .. } => Code::Aborted,
        RoomError::StoreUnavailable { .. }
        | RoomError::OwnerUnavailable { .. }
        | RoomError::NotOwner { .. } => Code::Unavailable,
    }
}

/// Converts a fault into the status sent to the client.
pub fn status(error: RoomError) -> Status {
    if error.is_retryable() {
        warn!(reason = error.reason(), error = %error, "request failed; the client may retry");
    } else if matches!(error, RoomError::RateLimited { .. }) {
        // A caller over its rate can send many requests a second, so these
        // are counted in roomd_faults_total and logged at debug only.
        debug!(reason = error.reason(), error = %error, "request rejected");
    } else {
        info!(reason = error.reason(), error = %error, "request rejected");
    }
    build(error)
}

/// Builds the status for a fault and counts it, without logging it.
fn build(error: RoomError) -> Status {
    metrics::counter!("roomd_faults_total", "reason" => error.reason()).increment(1);
    let metadata: HashMap<String, String> = error
        .metadata()
        .into_iter()
        .map(|(key, value)| (key.to_owned(), shorten(&value)))
        .collect();
    let mut details = ErrorDetails::with_error_info(error.reason(), DOMAIN, metadata);
    if let RoomError::Validation { path, message } = &error {
        details.add_bad_request_violation(shorten(path), shorten(message));
    }
    if let RoomError::RateLimited { retry_after, .. } = &error {
        details.set_retry_info(Some(*retry_after));
    }
    Status::with_error_details(code(&error), shorten(&error.to_string()), details)
}

/// Cuts `text` to at most [`MAX_FAULT_TEXT_BYTES`] bytes at a character
/// boundary, marking the cut with `...`.
fn shorten(text: &str) -> String {
    if text.len() <= MAX_FAULT_TEXT_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_FAULT_TEXT_BYTES - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Returns a response mapper that replaces the statuses tonic's codec sends
/// for a request it cannot decode with roomd faults, which carry an
/// `ErrorInfo` like every other fault:
/// - a request over `max_bytes` gets `RESOURCE_EXHAUSTED`, reason
///   `limit.requestSize`, as gRPC specifies for messages over the limit;
/// - bytes that are not a valid request message (truncated, invalid UTF-8 in
///   a string, nested too deep) or a body that ends inside a message frame
///   get `INVALID_ARGUMENT`, reason `invalidArgument.validation`, path
///   `request`.
///
/// Other framing errors, such as a compressed flag without `grpc-encoding`,
/// keep the `INTERNAL` status that gRPC's compression spec requires, and are
/// logged here because no handler saw them.
pub fn codec_faults(
    max_bytes: usize,
) -> impl Fn(http::Response<Body>) -> http::Response<Body> + Clone {
    move |response| {
        // A rejection has no body, so its status is in the headers.
        let Some(rejection) = Status::from_header_map(response.headers()) else {
            return response;
        };

        match codec_fault(&rejection, max_bytes) {
            Some(error) => status(error).into_http(),
            None => {
                // roomd's own faults never use INTERNAL, so the codec sent it
                // before any handler could log the request.
                if rejection.code() == Code::Internal {
                    info!(
                        error = rejection.message(),
                        "request rejected by the gRPC codec"
                    );
                }
                response
            }
        }
    }
}

/// Returns the roomd fault for a status that tonic's codec sends on its own,
/// or `None` for any other status.
fn codec_fault(rejection: &Status, max_bytes: usize) -> Option<RoomError> {
    let message = rejection.message();
    match rejection.code() {
        Code::OutOfRange if message.starts_with(TONIC_TOO_LARGE) => {
            Some(RoomError::RequestTooLarge { max_bytes })
        }
        Code::Internal if message == TONIC_TRUNCATED_FRAME => Some(RoomError::validation(
            "request",
            "the request body ends inside a gRPC message frame",
        )),
        Code::Internal => message.strip_prefix(PROST_DECODE_FAILED).map(|cause| {
            RoomError::validation("request", format!("not a valid Protobuf message: {cause}"))
        }),
        _ => None,
    }
}

/// Converts a failed authentication into the status sent to the client:
/// `unauthenticated`, or a validation fault for malformed principal
/// metadata. The caller logs a rejected credential with the peer address,
/// so only the validation fault is logged here.
pub fn unauthenticated(error: AuthError) -> Status {
    match error {
        AuthError::Metadata(error) => status(error),
        error => build(RoomError::Unauthenticated {
            message: error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_fault_carries_path_and_violation() {
        let status = status(RoomError::validation("label", "must not be empty"));
        assert_eq!(status.code(), Code::InvalidArgument);

        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "invalidArgument.validation");
        assert_eq!(info.domain, "roomd");
        assert_eq!(info.metadata["path"], "label");

        let bad_request = status.get_details_bad_request().unwrap();
        assert_eq!(bad_request.field_violations[0].field, "label");
    }

    /// Sends tonic's rejection `reply` through [`codec_faults`] with a
    /// 1,000-byte limit and returns the status that reaches the client.
    fn through_codec_faults(reply: Status) -> Status {
        let mapped = codec_faults(1000)(reply.into_http());
        Status::from_header_map(mapped.headers()).expect("the response carries a status")
    }

    #[test]
    fn oversized_request_becomes_size_fault() {
        let status = through_codec_faults(Status::out_of_range(format!(
            "{TONIC_TOO_LARGE}: found 2000 bytes, the limit is: 1000 bytes"
        )));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "limit.requestSize"
        );

        let unchanged = through_codec_faults(Status::out_of_range("past the end"));
        assert_eq!(unchanged.code(), Code::OutOfRange);
    }

    #[test]
    fn undecodable_request_becomes_validation_fault() {
        let status = through_codec_faults(Status::internal(format!(
            "{PROST_DECODE_FAILED}GetRoomRequest.room_id: invalid string value: data is not UTF-8 encoded"
        )));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("GetRoomRequest.room_id"),
            "{}",
            status.message()
        );
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "invalidArgument.validation");
        assert_eq!(info.metadata["path"], "request");

        let truncated = through_codec_faults(Status::internal(TONIC_TRUNCATED_FRAME));
        assert_eq!(truncated.code(), Code::InvalidArgument);
        assert_eq!(
            truncated.get_details_error_info().unwrap().metadata["path"],
            "request"
        );

        let unchanged = through_codec_faults(Status::internal("store script failed"));
        assert_eq!(unchanged.code(), Code::Internal);
    }

    #[test]
    fn auth_errors_are_unauthenticated_or_validation() {
        let status = unauthenticated(AuthError::MissingCredential);
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "unauthenticated"
        );

        let status = unauthenticated(AuthError::Metadata(RoomError::validation(
            "x-roomd-org",
            "must be printable ASCII",
        )));
        assert_eq!(status.code(), Code::InvalidArgument);
    }

    #[test]
    fn closed_room_is_failed_precondition() {
        let status = status(RoomError::Closed {
            room_id: "r1".into(),
        });
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(
            status.get_details_error_info().unwrap().metadata["roomId"],
            "r1"
        );
    }

    #[test]
    fn rate_limit_carries_retry_delay() {
        let status = status(RoomError::RateLimited {
            per_second: 5,
            retry_after: std::time::Duration::from_millis(200),
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "limit.rate"
        );
        let retry = status.get_details_retry_info().unwrap();
        assert_eq!(
            retry.retry_delay,
            Some(std::time::Duration::from_millis(200))
        );
    }

    #[test]
    fn long_texts_are_shortened() {
        let room_id = "é".repeat(10_000);
        let long = status(RoomError::validation(
            room_id.clone(),
            format!("{room_id:?} is not a room id"),
        ));
        assert!(
            long.message().len() <= MAX_FAULT_TEXT_BYTES,
            "{}",
            long.message().len()
        );
        assert!(long.message().ends_with("..."));

        let info = long.get_details_error_info().unwrap();
        assert!(info.metadata["path"].len() <= MAX_FAULT_TEXT_BYTES);
        let violation = &long.get_details_bad_request().unwrap().field_violations[0];
        assert!(violation.field.len() <= MAX_FAULT_TEXT_BYTES);
        assert!(violation.description.len() <= MAX_FAULT_TEXT_BYTES);

        let short = status(RoomError::validation("label", "must not be empty"));
        assert_eq!(short.message(), "invalid label: must not be empty");
    }
}
