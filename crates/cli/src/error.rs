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

    #[error("cannot connect to roomd at {addr}: {source}")]
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
            CliError::Fault(status)
                if fault_reason_of(status).is_none() && status.code() == Code::Unavailable =>
            {
                EXIT_UNREACHABLE
            }
            CliError::Fault(_) | CliError::Response(_) => EXIT_FAULT,
        }
    }
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        CliError::Fault(status)
    }
}

fn fault_reason_of(status: &tonic::Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.reason)
}

/// Returns roomd's dotted reason, or the gRPC code for faults that did not
/// come from roomd (a proxy, a transport failure).
fn fault_reason(status: &tonic::Status) -> String {
    fault_reason_of(status).unwrap_or_else(|| format!("{:?}", status.code()))
}
