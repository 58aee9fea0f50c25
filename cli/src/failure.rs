//! What went wrong, the exit code it maps to, and what to do next.

use std::process::ExitCode;

use tonic::Code;

/// A failure the user sees: one line of what happened and what to try.
#[derive(Debug)]
pub struct Failure {
    /// The exit code (see `syncguard --help`).
    pub code: u8,
    /// The message.
    pub message: String,
}

impl Failure {
    /// Bad usage, or an action not confirmed: exit 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }

    /// Anything else that failed: exit 1.
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }

    /// Standard output was closed by its reader (`syncguard logs | head`): stop quietly with
    /// exit 0.
    pub fn reader_gone() -> Self {
        Self {
            code: 0,
            message: String::new(),
        }
    }

    /// The exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        let (code, hint) = match status.code() {
            Code::NotFound => (3, ""),
            Code::Unauthenticated => (4, " (check SYNCGUARD_TOKEN)"),
            Code::PermissionDenied => (4, " (use a token with the role named above)"),
            Code::FailedPrecondition | Code::Aborted | Code::AlreadyExists => (
                5,
                " (read the current state again, e.g. `syncguard quarantine show`)",
            ),
            Code::InvalidArgument => (2, ""),
            Code::Unavailable => (6, ""),
            Code::Unimplemented => (6, ""),
            _ => (1, ""),
        };
        let message = if status.message().is_empty() {
            format!("the service answered {:?} without a message", status.code())
        } else {
            status.message().to_owned()
        };
        Self {
            code,
            message: format!("{message}{hint}"),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self::other(format!("{error:#}"))
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Self::other(error.to_string())
    }
}
