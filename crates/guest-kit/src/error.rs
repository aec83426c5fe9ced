use http::StatusCode;

use crate::redact::redact_secrets;
use crate::response::{HttpResponse, error};

/// A failure that is not the client's fault, with the answer it deserves.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// A Spin variable is missing or unusable: the deployment is broken (500).
    #[error("variable `{name}`: {reason}")]
    Variable { name: String, reason: String },
    /// A backing service failed or is out of reach (503). `detail` is what
    /// the client sees; `cause` goes to the log only.
    #[error("{detail}: {cause}")]
    Unavailable { detail: &'static str, cause: String },
    /// No PostgreSQL connection slot came free within the wait limit (503):
    /// every slot is held by someone else.
    #[error("no PostgreSQL connection within {waited_ms} ms")]
    NoConnection { waited_ms: u128 },
}

impl GuestError {
    /// `cause` is kept with its passwords masked: it is logged.
    pub fn unavailable(detail: &'static str, cause: impl std::fmt::Display) -> Self {
        GuestError::Unavailable {
            detail,
            cause: redact_secrets(&cause.to_string()),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            GuestError::Variable { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            GuestError::Unavailable { .. } | GuestError::NoConnection { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// What the client is told. Causes stay out of it: they can carry
    /// connection strings.
    pub fn detail(&self) -> String {
        match self {
            GuestError::Variable { name, .. } => {
                format!("Server misconfigured: variable {name} is unavailable")
            }
            GuestError::Unavailable { detail, .. } => (*detail).to_owned(),
            GuestError::NoConnection { .. } => {
                "Database unavailable: no connection available".to_owned()
            }
        }
    }

    /// Logs the full error to stderr and answers `{"detail": ...}`.
    pub fn into_response(self) -> HttpResponse {
        eprintln!("error: {}", redact_secrets(&self.to_string()));
        error(self.status(), &self.detail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_details() {
        let e = GuestError::unavailable("Database unavailable", "connection refused");
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.detail(), "Database unavailable");
        assert_eq!(e.to_string(), "Database unavailable: connection refused");

        let e = GuestError::Variable {
            name: "db_url".into(),
            reason: "undefined".into(),
        };
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            e.detail(),
            "Server misconfigured: variable db_url is unavailable"
        );
        assert_eq!(e.into_response().status(), 500);
    }

    #[test]
    fn causes_lose_their_passwords() {
        let e = GuestError::unavailable(
            "Database unavailable",
            "cannot open postgres://honey:s3cret@db/honey",
        );
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert_eq!(e.detail(), "Database unavailable");
    }
}
