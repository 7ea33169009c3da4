use std::error::Error as _;

use tonic::Code;
use tonic_types::StatusExt;

/// Exit status for a fault returned by roomd.
const EXIT_FAULT: u8 = 1;
/// Exit status for bad command-line input, as clap uses.
const EXIT_USAGE: u8 = 2;
/// Exit status when roomd cannot be reached.
const EXIT_UNREACHABLE: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),

    #[error(
        "cannot connect to roomd at {addr}: {}; check that roomd runs, that --addr (or ROOMD_ADDR) names it, and, for TLS, that --ca names the CA of roomd's certificate",
        error_chain(.source)
    )]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },

    /// A fault from roomd, printed as `reason: message`, or a failed
    /// connection, printed with its causes.
    #[error("{}: {}", fault_reason(.0), fault_message(.0))]
    Fault(tonic::Status),

    #[error("roomd sent a response roomctl cannot read: {0}")]
    Response(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Connect { .. } => EXIT_UNREACHABLE,
            CliError::Fault(status) if is_transport_failure(status) => EXIT_UNREACHABLE,
            CliError::Fault(_) | CliError::Response(_) => EXIT_FAULT,
        }
    }
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        CliError::Fault(status)
    }
}

/// Tells whether a status came from the connection (refused, dropped, timed
/// out, not speaking the same protocol) rather than from roomd, which always
/// attaches an `ErrorInfo`.
fn is_transport_failure(status: &tonic::Status) -> bool {
    if fault_reason_of(status).is_some() {
        return false;
    }
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => true,
        // tonic turns a client-side transport error into `Unknown` and keeps
        // the error as the status's source.
        Code::Unknown => status.source().is_some(),
        _ => false,
    }
}

/// Joins an error and its sources, so "transport error" shows its cause.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        // Some errors repeat their source's text in their own; print it once.
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn fault_reason_of(status: &tonic::Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.reason)
}

/// Returns roomd's dotted reason, or a description of the gRPC code for
/// faults that did not come from roomd (a proxy, a transport failure).
fn fault_reason(status: &tonic::Status) -> String {
    fault_reason_of(status).unwrap_or_else(|| match status.code() {
        Code::DeadlineExceeded | Code::Cancelled => {
            "timed out waiting for roomd (see --timeout)".into()
        }
        Code::Unavailable => "roomd unavailable".into(),
        Code::Unknown if status.source().is_some() => {
            "connection to roomd failed (check --addr's scheme and the TLS flags)".into()
        }
        code => format!("{code:?}"),
    })
}

/// Returns the status message, followed by the causes of a transport error.
fn fault_message(status: &tonic::Status) -> String {
    match status.source() {
        Some(source) if fault_reason_of(status).is_none() => error_chain(source),
        _ => status.message().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_error_exits_unreachable_with_its_cause() {
        let cause = std::io::Error::other("invalid HTTP version");
        let status = tonic::Status::from_error(Box::new(cause));
        let error = CliError::Fault(status);

        assert_eq!(error.exit_code(), EXIT_UNREACHABLE);
        assert!(
            error.to_string().starts_with("connection to roomd failed"),
            "{error}"
        );
        assert!(
            error.to_string().contains("invalid HTTP version"),
            "{error}"
        );
    }

    #[test]
    fn bare_unknown_status_is_fault() {
        let error = CliError::Fault(tonic::Status::unknown("proxy said no"));

        assert_eq!(error.exit_code(), EXIT_FAULT);
        assert_eq!(error.to_string(), "Unknown: proxy said no");
    }

    #[test]
    fn timeout_exits_unreachable() {
        let error = CliError::Fault(tonic::Status::deadline_exceeded("late"));

        assert_eq!(error.exit_code(), EXIT_UNREACHABLE);
    }
}
