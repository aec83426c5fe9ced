//! The referral lookup against `referral_partners`.
//!
//! Partner codes are compared by key (`referral_code_key`, migrations/002), so a code typed off a
//! slide matches whatever case, separators or look-alike characters it was typed with. If that
//! lookup is too slow for the database's `statement_timeout`, the code is tried once more exactly
//! as given: the QR code link carries it verbatim, so most voters still get their partner
//! credited.

use std::time::Duration;

use guest_kit::GuestError;
use spin_sdk::pg::{self, DbError, ParameterValue, PgError, QueryError, Row};

use poll_core::referral::{BY_KEY_SQL as BY_KEY, EXACT_SQL as EXACT};
use poll_metrics::REFERRAL_LOOKUPS;

use crate::pool;

/// PostgreSQL's SQLSTATE for "canceling statement due to statement timeout".
const QUERY_CANCELED: &str = "57014";

/// Where the database is and how long to wait for one of its connections.
pub struct Database {
    pub url: String,
    pub wait: Duration,
}

/// What a lookup found, and how.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// A partner's code has the same key.
    ByKey(Option<String>),
    /// The key lookup timed out; this is the exact-code lookup's answer.
    Exact(Option<String>),
}

impl Found {
    pub fn partner(&self) -> Option<&str> {
        match self {
            Found::ByKey(p) | Found::Exact(p) => p.as_deref(),
        }
    }
}

/// Why a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Unavailable(#[from] GuestError),
    #[error("query failed: {0}")]
    Query(#[from] pg::Error),
}

impl LookupError {
    fn is_statement_timeout(&self) -> bool {
        matches!(
            self,
            LookupError::Query(pg::Error::PgError(PgError::QueryFailed(QueryError::DbError(
                DbError { code, .. }
            )))) if code == QUERY_CANCELED
        )
    }
}

/// The partner that owns `code`, if any.
pub async fn find_partner(db: &Database, code: &str) -> Result<Found, LookupError> {
    match find_by_key(db, code).await {
        Ok(partner) => Ok(Found::ByKey(partner)),
        Err(e) if e.is_statement_timeout() => {
            eprintln!("referral: key lookup timed out ({e}); trying the exact code");
            guest_kit::telemetry::count(REFERRAL_LOOKUPS, "outcome", "timed_out");
            Ok(Found::Exact(find_exact(db, code).await?))
        }
        Err(e) => Err(e),
    }
}

async fn find_by_key(db: &Database, code: &str) -> Result<Option<String>, LookupError> {
    let conn = pool::checkout(&db.url, db.wait).await?;
    let rows = conn
        .query(BY_KEY, vec![ParameterValue::Str(code.to_owned())])
        .await?
        .collect()
        .await?;
    pool::checkin(conn);
    Ok(only_partner(&rows))
}

async fn find_exact(db: &Database, code: &str) -> Result<Option<String>, LookupError> {
    let conn = pool::checkout(&db.url, db.wait).await?;
    let rows = conn
        .query(EXACT, vec![ParameterValue::Str(code.to_owned())])
        .await?
        .collect()
        .await?;
    pool::checkin(conn);
    Ok(only_partner(&rows))
}

/// The partner's name when exactly one partner matched. Two partners whose
/// codes share a key cannot be told apart, so neither is credited.
fn only_partner(rows: &[Row]) -> Option<String> {
    match rows {
        [row] => row.get::<String>("partner_name"),
        [] => None,
        _ => {
            eprintln!("referral: {} partners share this code's key", rows.len());
            None
        }
    }
}

// These test the lookup's decisions, never its connections: they pass whether
// or not a connection is given back (the README's spoiler says why that matters).
#[cfg(test)]
mod decisions_not_connections {
    use super::*;

    fn db_error(code: &str) -> LookupError {
        LookupError::Query(pg::Error::PgError(PgError::QueryFailed(
            QueryError::DbError(DbError {
                as_text: String::new(),
                severity: "ERROR".into(),
                code: code.into(),
                message: "canceling statement due to statement timeout".into(),
                detail: None,
                extras: Vec::new(),
            }),
        )))
    }

    #[test]
    fn a_statement_timeout_is_recognised_by_its_sqlstate() {
        assert!(db_error("57014").is_statement_timeout());
        assert!(!db_error("42P01").is_statement_timeout());
        let text = LookupError::Query(pg::Error::PgError(PgError::QueryFailed(QueryError::Text(
            "57014".into(),
        ))));
        assert!(!text.is_statement_timeout());
        let unavailable = LookupError::Unavailable(GuestError::unavailable("x", "y"));
        assert!(!unavailable.is_statement_timeout());
    }

    #[test]
    fn found_reports_the_partner_either_way() {
        assert_eq!(Found::ByKey(Some("A".into())).partner(), Some("A"));
        assert_eq!(Found::Exact(Some("B".into())).partner(), Some("B"));
        assert_eq!(Found::ByKey(None).partner(), None);
    }
}
