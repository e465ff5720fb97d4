//! Errors whose kind decides the process exit code, and the exit codes of CLI.md.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// A wait that ended before what it waited for (`status --wait --timeout`).
    #[error("{0}")]
    Timeout(String),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Config { .. } | Error::Usage(_) => Exit::Usage,
            Error::NotAvailable(_) | Error::Timeout(_) => Exit::Failure,
            Error::Blocked(_) => Exit::Blocked,
        }
    }
}

/// A file (or another named thing) that could not be read, captured or restored, and why:
/// per-item failures never stop a run, they are named in its report and turn its exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub path: String,
    pub error: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, error: impl std::fmt::Display) -> Problem {
        Problem {
            path: path.into(),
            error: error.to_string(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.error.is_empty() {
            f.write_str(&self.path)
        } else {
            write!(f, "{}: {}", self.path, self.error)
        }
    }
}

/// Serde for the lists of problems the restore report, its journal and the events carry
/// as `path: reason` lines (their JSON shape since the first version); reading accepts
/// `{path, error}` objects too.
pub mod problem_lines {
    use super::Problem;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Problem], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(Problem::to_string))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Line(String),
        Object(Problem),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Problem>, D::Error> {
        let items = Vec::<Either>::deserialize(d)?;
        Ok(items
            .into_iter()
            .map(|i| match i {
                // a line cannot be split back safely (a path may hold ": "): it is kept
                // whole, and prints back as it was
                Either::Line(l) => Problem::new(l, ""),
                Either::Object(p) => p,
            })
            .collect())
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
/// `blocked`, `timeout` or `failure`.
pub fn kind_of(err: &anyhow::Error) -> &'static str {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return match e {
                Error::Config { .. } => "config",
                Error::Usage(_) => "usage",
                Error::NotAvailable(_) => "not-available",
                Error::Blocked(_) => "blocked",
                Error::Timeout(_) => "timeout",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Lines(#[serde(with = "problem_lines")] Vec<Problem>);

    #[test]
    fn problems_travel_as_path_reason_lines_and_read_back_from_either_shape() {
        let list = Lines(vec![
            Problem::new("/srv/a: b", "permission denied"),
            Problem::new("/etc/x", ""),
        ]);
        let json = serde_json::to_value(&list).unwrap();
        assert_eq!(
            json,
            serde_json::json!(["/srv/a: b: permission denied", "/etc/x"])
        );
        // a journal of an older version (lines) and one with objects both read
        let back: Lines = serde_json::from_value(serde_json::json!([
            "/srv/a: b: permission denied",
            {"path": "/srv/c", "error": "gone"}
        ]))
        .unwrap();
        assert_eq!(back.0[0].to_string(), "/srv/a: b: permission denied");
        // never cut at a ": " that may be the path's own
        assert_eq!(back.0[0], Problem::new("/srv/a: b: permission denied", ""));
        assert_eq!(back.0[1], Problem::new("/srv/c", "gone"));
    }
}
