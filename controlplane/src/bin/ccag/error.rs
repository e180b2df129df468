//! Failures and their exit codes.

use std::fmt;

use tonic::Code;

pub const EXIT_OTHER: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_UNREACHABLE: i32 = 3;
pub const EXIT_UNAUTHENTICATED: i32 = 4;
pub const EXIT_PERMISSION_DENIED: i32 = 5;
pub const EXIT_NOT_FOUND: i32 = 6;
pub const EXIT_ALREADY_EXISTS: i32 = 7;
pub const EXIT_INVALID_ARGUMENT: i32 = 8;

/// A failure: the process exits with `code` after printing `ccag: <message>`
/// as one line on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl CliError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn other(message: impl Into<String>) -> Self {
        Self::new(EXIT_OTHER, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(EXIT_USAGE, message)
    }

    pub fn not_logged_in(message: impl Into<String>) -> Self {
        Self::new(EXIT_UNAUTHENTICATED, message)
    }

    pub fn unreachable(endpoint: &str, cause: &(dyn std::error::Error + 'static)) -> Self {
        Self::new(EXIT_UNREACHABLE, format!("cannot reach the control plane at {endpoint}: {}", error_chain(cause)))
    }

    /// Maps an RPC's status to a message and an exit code.
    pub fn from_status(status: &tonic::Status, endpoint: &str) -> Self {
        let msg = status.message().trim();
        let msg = if msg.is_empty() { describe(status.code()) } else { msg.to_string() };
        match status.code() {
            Code::Unauthenticated => {
                Self::new(EXIT_UNAUTHENTICATED, format!("not authenticated: {msg} (run `ccag login`)"))
            }
            Code::PermissionDenied => Self::new(EXIT_PERMISSION_DENIED, format!("permission denied: {msg}")),
            Code::NotFound => Self::new(EXIT_NOT_FOUND, format!("not found: {msg}")),
            Code::AlreadyExists => Self::new(EXIT_ALREADY_EXISTS, format!("already exists: {msg}")),
            Code::InvalidArgument => Self::new(EXIT_INVALID_ARGUMENT, format!("invalid argument: {msg}")),
            Code::Unavailable => match std::error::Error::source(status) {
                // Transport failures surface as Unavailable with the cause attached.
                Some(source) => {
                    let cause = Some(error_chain(source)).filter(|c| !c.is_empty());
                    let detail = match cause {
                        Some(c) if !msg.contains(&c) => format!("{msg}: {c}"),
                        _ => msg,
                    };
                    Self::new(EXIT_UNREACHABLE, format!("cannot reach the control plane at {endpoint}: {detail}"))
                }
                // The control plane itself answered that it cannot serve now
                // (its database is down): reached, but unavailable.
                None => Self::new(EXIT_UNREACHABLE, format!("the control plane at {endpoint} is unavailable: {msg}")),
            },
            code => {
                let what = describe(code);
                if msg == what {
                    Self::new(EXIT_OTHER, msg)
                } else {
                    Self::new(EXIT_OTHER, format!("{what}: {msg}"))
                }
            }
        }
    }

    /// The message as exactly one line.
    pub fn one_line(&self) -> String {
        one_line(&self.message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.one_line())
    }
}

impl std::error::Error for CliError {}

/// Collapses any line breaks and runs of whitespace so a message fits one line.
pub fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.is_empty() {
        "unknown error".to_string()
    } else {
        joined
    }
}

/// "a: b: c" from an error and its sources, skipping repeats.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

fn describe(code: Code) -> String {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "failed precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "not implemented by the server",
        Code::Internal => "internal error",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "not authenticated",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Status;

    fn map(status: Status) -> CliError {
        CliError::from_status(&status, "http://h:1")
    }

    #[test]
    fn codes_map_to_exit_codes() {
        let e = map(Status::unauthenticated("bad token"));
        assert_eq!(e.code, 4);
        assert_eq!(e.message, "not authenticated: bad token (run `ccag login`)");
        assert_eq!(map(Status::permission_denied("no")).code, 5);
        assert_eq!(map(Status::not_found("no")).code, 6);
        assert_eq!(map(Status::already_exists("dup")).code, 7);
        let e = map(Status::invalid_argument("email is empty"));
        assert_eq!(e.code, 8);
        assert_eq!(e.message, "invalid argument: email is empty");
        let e = map(Status::unavailable("the database is unavailable"));
        assert_eq!(e.code, 3);
        assert_eq!(e.message, "the control plane at http://h:1 is unavailable: the database is unavailable");
        let e = map(Status::internal("boom"));
        assert_eq!(e.code, 1);
        assert_eq!(e.message, "internal error: boom");
        let e = map(Status::failed_precondition(""));
        assert_eq!((e.code, e.message.as_str()), (1, "failed precondition"));
    }

    #[test]
    fn messages_are_one_line() {
        let e = map(Status::internal("line one\nline two\r\n  three"));
        assert_eq!(e.one_line(), "internal error: line one line two three");
        assert_eq!(one_line(" \n"), "unknown error");
    }

    #[test]
    fn a_transport_failure_is_unreachable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let mut status = Status::unavailable("tcp connect error");
        status.set_source(std::sync::Arc::new(io));
        let e = map(status);
        assert_eq!(e.code, 3);
        assert!(e.message.starts_with("cannot reach the control plane at http://h:1: "), "{}", e.message);
        assert!(e.message.contains("refused"), "{}", e.message);
    }

    #[test]
    fn chains_sources() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = CliError::unreachable("http://h:1", &io);
        assert_eq!(e.code, 3);
        assert_eq!(e.message, "cannot reach the control plane at http://h:1: refused");
    }
}
