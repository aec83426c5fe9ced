use serde::{Deserialize, Serialize};

/// Detail of the 400 answer for a referral code the partner table does not
/// know, and of the referral component's 404 (BRIEF §5).
pub const INVALID_REFERRAL_DETAIL: &str = "Invalid referral code";

/// Detail of every JSON 404.
pub const NOT_FOUND_DETAIL: &str = "Not found";

/// The error body every endpoint uses: `{"detail": "..."}` (FastAPI's shape,
/// which the original app's clients and tests expect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub detail: String,
}

/// `{"detail": <detail>}` as compact JSON.
pub fn error_body(detail: &str) -> String {
    // Serialising a struct of one string cannot fail; the fallback only keeps
    // this function total.
    serde_json::to_string(&ErrorBody {
        detail: detail.to_owned(),
    })
    .unwrap_or_else(|_| String::from(r#"{"detail":"Internal error"}"#))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::INVALID_CHOICE_DETAIL;

    #[test]
    fn exact_contract_bodies() {
        assert_eq!(
            error_body(INVALID_CHOICE_DETAIL),
            r#"{"detail":"Invalid choice. Must be one of: print, stare, ai, revert, restart"}"#
        );
        assert_eq!(
            error_body(INVALID_REFERRAL_DETAIL),
            r#"{"detail":"Invalid referral code"}"#
        );
        assert_eq!(error_body(NOT_FOUND_DETAIL), r#"{"detail":"Not found"}"#);
    }

    #[test]
    fn detail_is_escaped() {
        let body = error_body("quote \" and\nnewline");
        let parsed: ErrorBody = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.detail, "quote \" and\nnewline");
    }
}
