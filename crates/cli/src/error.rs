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
        "cannot connect to roomd at {addr}: {}; check that roomd runs and that --addr (or ROOMD_ADDR) names it",
        error_chain(.source)
    )]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },

    /// A fault from roomd: printed as `reason: message`.
    #[error("{}: {}", fault_reason(.0), .0.message())]
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
/// out) rather than from roomd, which always attaches an `ErrorInfo`.
fn is_transport_failure(status: &tonic::Status) -> bool {
    fault_reason_of(status).is_none()
        && matches!(
            status.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
        )
}

/// Joins an error and its sources, so "transport error" shows its cause.
fn error_chain(error: &dyn std::error::Error) -> String {
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
        code => format!("{code:?}"),
    })
}
