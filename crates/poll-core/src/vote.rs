use serde::Serialize;
use serde_json::Value;

use crate::{Choice, INVALID_CHOICE_DETAIL, INVALID_REFERRAL_DETAIL};

/// Largest `POST /vote` body accepted; a real vote is ~60 bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Longest referral code accepted (in characters, after trimming).
pub const MAX_REFERRAL_CHARS: usize = 64;

/// A validated vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub choice: Choice,
    pub referral: Option<ReferralCode>,
}

/// A referral code that passed the syntactic checks (trimmed, non-empty, at
/// most [`MAX_REFERRAL_CHARS`] characters, no control characters). Whether a
/// partner owns it is the referral component's question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralCode(String);

impl ReferralCode {
    /// `Ok(None)` when `raw` is blank (= no referral), `Err` when it cannot be
    /// a code at all.
    pub fn parse(raw: &str) -> Result<Option<ReferralCode>, VoteError> {
        let code = raw.trim();
        if code.is_empty() {
            return Ok(None);
        }
        if code.chars().count() > MAX_REFERRAL_CHARS || code.chars().any(char::is_control) {
            return Err(VoteError::InvalidReferral);
        }
        Ok(Some(ReferralCode(code.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a vote request was refused. Every variant is the client's fault (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    #[error("request body is not valid JSON")]
    MalformedJson,
    #[error("request body is not a JSON object")]
    NotAnObject,
    #[error("{INVALID_CHOICE_DETAIL}")]
    InvalidChoice,
    #[error("{INVALID_REFERRAL_DETAIL}")]
    InvalidReferral,
}

impl VoteError {
    /// The `detail` of the 400 body.
    pub fn detail(&self) -> &'static str {
        match self {
            VoteError::MalformedJson => "Request body must be valid JSON",
            VoteError::NotAnObject => "Request body must be a JSON object",
            VoteError::InvalidChoice => INVALID_CHOICE_DETAIL,
            VoteError::InvalidReferral => INVALID_REFERRAL_DETAIL,
        }
    }
}

/// Parses and validates a `POST /vote` body:
/// `{"choice": "<id>", "referral": "<code>"?}`.
///
/// A missing or non-string `choice` is an invalid choice (its detail lists the
/// valid ids, which is what a client needs). `referral` absent, `null` or
/// blank means no referral; any other non-string is an invalid referral.
/// Unknown fields are ignored, as the original API did. The choice is checked
/// before the referral so a bad choice never costs a referral lookup.
pub fn parse_vote(body: &[u8]) -> Result<Vote, VoteError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| VoteError::MalformedJson)?;
    let object = value.as_object().ok_or(VoteError::NotAnObject)?;

    let choice = object
        .get("choice")
        .and_then(Value::as_str)
        .and_then(Choice::from_id)
        .ok_or(VoteError::InvalidChoice)?;

    let referral = match object.get("referral") {
        None | Some(Value::Null) => None,
        Some(Value::String(raw)) => ReferralCode::parse(raw)?,
        Some(_) => return Err(VoteError::InvalidReferral),
    };

    Ok(Vote { choice, referral })
}

/// Whether a `Content-Type` value announces JSON: `application/json` or an
/// `application/*+json` type, parameters (`; charset=utf-8`) ignored.
pub fn is_json_content_type(value: &str) -> bool {
    let media_type = value.split(';').next().unwrap_or_default().trim();
    let media_type = media_type.to_ascii_lowercase();
    media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

/// Body of a successful vote: `{"status":"ok","choice":"<id>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VoteReceipt {
    pub status: &'static str,
    pub choice: Choice,
}

impl VoteReceipt {
    pub fn new(choice: Choice) -> Self {
        VoteReceipt {
            status: "ok",
            choice,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Vote, VoteError> {
        parse_vote(body.as_bytes())
    }

    fn code(s: &str) -> Option<ReferralCode> {
        Some(ReferralCode(s.to_owned()))
    }

    #[test]
    fn accepts_every_choice() {
        for c in Choice::ALL {
            let body = format!(r#"{{"choice":"{}"}}"#, c.id());
            assert_eq!(
                parse(&body),
                Ok(Vote {
                    choice: c,
                    referral: None
                })
            );
        }
    }

    #[test]
    fn referral_absent_null_or_blank_means_none() {
        for body in [
            r#"{"choice":"ai"}"#,
            r#"{"choice":"ai","referral":null}"#,
            r#"{"choice":"ai","referral":""}"#,
            r#"{"choice":"ai","referral":"   "}"#,
            r#"{"choice":"ai","referral":"\t \n"}"#,
        ] {
            assert_eq!(parse(body).unwrap().referral, None, "{body}");
        }
    }

    #[test]
    fn referral_is_trimmed() {
        let vote = parse(r#"{"choice":"stare","referral":"  conf-partner-2026 "}"#).unwrap();
        assert_eq!(vote.referral, code("conf-partner-2026"));
        assert_eq!(vote.referral.unwrap().as_str(), "conf-partner-2026");
    }

    #[test]
    fn referral_length_limit_counts_characters_after_trim() {
        let ok = "x".repeat(MAX_REFERRAL_CHARS);
        let body = format!(r#"{{"choice":"print","referral":"  {ok}  "}}"#);
        assert_eq!(parse(&body).unwrap().referral, code(&ok));

        // 64 two-byte characters: 128 bytes but still 64 characters.
        let wide = "é".repeat(MAX_REFERRAL_CHARS);
        let body = format!(r#"{{"choice":"print","referral":"{wide}"}}"#);
        assert_eq!(parse(&body).unwrap().referral, code(&wide));

        let long = "x".repeat(MAX_REFERRAL_CHARS + 1);
        let body = format!(r#"{{"choice":"print","referral":"{long}"}}"#);
        assert_eq!(parse(&body), Err(VoteError::InvalidReferral));
    }

    #[test]
    fn referral_with_control_characters_is_invalid() {
        for raw in [r"a\u0000b", r"a\u0007b", r"a\nb", r"a\u007fb", r"a\u009bb"] {
            let body = format!(r#"{{"choice":"print","referral":"{raw}"}}"#);
            assert_eq!(parse(&body), Err(VoteError::InvalidReferral), "{raw}");
        }
    }

    #[test]
    fn referral_of_wrong_type_is_invalid() {
        for raw in ["42", "true", "[]", "{}", r#"["conf-partner-2026"]"#] {
            let body = format!(r#"{{"choice":"print","referral":{raw}}}"#);
            assert_eq!(parse(&body), Err(VoteError::InvalidReferral), "{raw}");
        }
    }

    #[test]
    fn invalid_choices() {
        for body in [
            r#"{}"#,
            r#"{"choice":null}"#,
            r#"{"choice":""}"#,
            r#"{"choice":"Print"}"#,
            r#"{"choice":" print"}"#,
            r#"{"choice":"vim"}"#,
            r#"{"choice":1}"#,
            r#"{"choice":["print"]}"#,
            r#"{"Choice":"print"}"#,
        ] {
            assert_eq!(parse(body), Err(VoteError::InvalidChoice), "{body}");
        }
    }

    #[test]
    fn choice_is_checked_before_referral() {
        let body = r#"{"choice":"nope","referral":42}"#;
        assert_eq!(parse(body), Err(VoteError::InvalidChoice));
    }

    #[test]
    fn malformed_json_and_non_objects() {
        for body in [
            "",
            "{",
            "choice=print",
            r#"{"choice":"print",}"#,
            "\u{feff}{}",
        ] {
            assert_eq!(parse(body), Err(VoteError::MalformedJson), "{body:?}");
        }
        assert_eq!(
            parse_vote(&[0xff, 0xfe, b'{', b'}']),
            Err(VoteError::MalformedJson)
        );
        for body in ["[]", "\"print\"", "42", "null", r#"[{"choice":"print"}]"#] {
            assert_eq!(parse(body), Err(VoteError::NotAnObject), "{body}");
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let vote = parse(r#"{"choice":"revert","extra":{"x":1},"referral":"abc"}"#).unwrap();
        assert_eq!(vote.choice, Choice::Revert);
        assert_eq!(vote.referral, code("abc"));
    }

    #[test]
    fn details_match_contract() {
        assert_eq!(VoteError::InvalidChoice.detail(), INVALID_CHOICE_DETAIL);
        assert_eq!(VoteError::InvalidReferral.detail(), "Invalid referral code");
        assert_eq!(
            VoteError::InvalidChoice.to_string(),
            VoteError::InvalidChoice.detail()
        );
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            " application/json ;charset=UTF-8",
            "application/vnd.api+json",
        ] {
            assert!(is_json_content_type(ok), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "text/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
        ] {
            assert!(!is_json_content_type(bad), "{bad}");
        }
    }

    #[test]
    fn receipt_shape() {
        let json = serde_json::to_string(&VoteReceipt::new(Choice::Restart)).unwrap();
        assert_eq!(json, r#"{"status":"ok","choice":"restart"}"#);
    }
}
