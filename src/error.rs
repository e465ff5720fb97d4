//! Errors whose kind decides the process exit code, and the exit codes of CLI.md.

use std::path::PathBuf;

/// The exit codes of the command-line contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Failure = 1,
    Usage = 2,
    Blocked = 3,
    Degraded = 4,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Errors a caller branches on; everything else is an `anyhow` error with context and
/// exits 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: {message}")]
    Config { file: PathBuf, message: String },
    #[error("{0}")]
    Usage(String),
    #[error("'{0}' is not available yet in this version of carryover")]
    NotAvailable(&'static str),
    #[error("blocked by preflight findings not acknowledged: {}", .0.join(", "))]
    Blocked(Vec<String>),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Config { .. } | Error::Usage(_) => Exit::Usage,
            Error::NotAvailable(_) => Exit::Failure,
            Error::Blocked(_) => Exit::Blocked,
        }
    }
}

/// The exit code for any error that reached the top.
pub fn exit_for(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return e.exit();
        }
    }
    Exit::Failure
}

/// The kind of an error for `--format json`: `config`, `usage`, `not-available`,
/// `blocked` or `failure`.
pub fn kind_of(err: &anyhow::Error) -> &'static str {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return match e {
                Error::Config { .. } => "config",
                Error::Usage(_) => "usage",
                Error::NotAvailable(_) => "not-available",
                Error::Blocked(_) => "blocked",
            };
        }
    }
    "failure"
}

/// A failed command's JSON on stdout: `{"error": {"kind", "message", "exit_code"}}`.
pub fn json_error(err: &anyhow::Error) -> serde_json::Value {
    serde_json::json!({"error": {
        "kind": kind_of(err),
        "message": format!("{err:#}"),
        "exit_code": exit_for(err).code(),
    }})
}
