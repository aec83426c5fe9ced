//! `GET /referrals/<code>`: whether a partner owns a referral code. Private
//! (spin.toml gives it no public route): the vote component reaches it through
//! local service chaining at `http://referral.spin.internal`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod lookup;
mod pool;

use guest_kit::{HttpResponse, Method, StatusCode, error, json, method_not_allowed};
use lookup::{Database, Found};
use poll_core::{INVALID_REFERRAL_DETAIL, ReferralCode, percent_decode};
use poll_metrics::REFERRAL_LOOKUPS;
use serde::Serialize;
use spin_sdk::http::Request;
use spin_sdk::http_service;

const ROUTE_PREFIX: &str = "/referrals/";

#[derive(Serialize)]
struct Partner<'a> {
    code: &'a str,
    partner: &'a str,
    /// `key` or `exact`: how the code was matched.
    matched: &'static str,
}

#[http_service]
async fn handle(request: Request) -> HttpResponse {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return method_not_allowed("GET, HEAD");
    }
    // A code that cannot be one (bad escape, blank, too long, control
    // characters) is unknown, not a server problem.
    let Some(code) = code_from_path(request.uri().path()) else {
        return invalid_code();
    };
    let db = match database().await {
        Ok(db) => db,
        Err(e) => return e.into_response(),
    };
    match lookup::find_partner(&db, code.as_str()).await {
        Ok(found) => {
            let outcome = match (&found, found.partner().is_some()) {
                (Found::ByKey(_), true) => "matched",
                (Found::ByKey(_), false) => "unknown",
                (Found::Exact(_), true) => "exact_matched",
                (Found::Exact(_), false) => "exact_unknown",
            };
            guest_kit::telemetry::count(REFERRAL_LOOKUPS, "outcome", outcome);
            match found.partner() {
                Some(partner) => json(
                    StatusCode::OK,
                    &Partner {
                        code: code.as_str(),
                        partner,
                        matched: if matches!(found, Found::ByKey(_)) {
                            "key"
                        } else {
                            "exact"
                        },
                    },
                ),
                None => invalid_code(),
            }
        }
        Err(e) => {
            eprintln!("referral: lookup failed: {e}");
            guest_kit::telemetry::count(REFERRAL_LOOKUPS, "outcome", "failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Referral lookup unavailable",
            )
        }
    }
}

async fn database() -> Result<Database, guest_kit::GuestError> {
    Ok(Database {
        url: guest_kit::variable("db_url").await?,
        wait: guest_kit::duration_ms_variable("db_wait_timeout_ms").await?,
    })
}

fn invalid_code() -> HttpResponse {
    error(StatusCode::NOT_FOUND, INVALID_REFERRAL_DETAIL)
}

/// The validated code from `/referrals/<percent-encoded code>`.
fn code_from_path(path: &str) -> Option<ReferralCode> {
    let encoded = path.strip_prefix(ROUTE_PREFIX)?;
    let decoded = percent_decode(encoded)?;
    ReferralCode::parse(&decoded).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(path: &str) -> Option<String> {
        code_from_path(path).map(|c| c.as_str().to_owned())
    }

    #[test]
    fn codes_from_paths() {
        assert_eq!(
            code("/referrals/conf-partner-2026").as_deref(),
            Some("conf-partner-2026")
        );
        assert_eq!(code("/referrals/a%20b%2Fc").as_deref(), Some("a b/c"));
        // Same rules as the vote body: trimmed.
        assert_eq!(code("/referrals/%20abc%20").as_deref(), Some("abc"));
    }

    #[test]
    fn paths_without_a_usable_code() {
        for path in [
            "/referrals/",
            "/referrals/%20%20",
            "/referrals/%zz",
            "/referrals/a%00b",
            "/referral/abc",
            "/",
        ] {
            assert_eq!(code(path), None, "{path}");
        }
        let long = format!("/referrals/{}", "x".repeat(65));
        assert_eq!(code(&long), None);
    }
}
