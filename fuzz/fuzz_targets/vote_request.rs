//! The `POST /vote` request parser: whatever a client sends as body (or content type), the
//! parser answers without panicking, and a vote it accepts is one the rest of the app can
//! trust (a known choice; a trimmed, short referral code without control characters).

#![no_main]

use libfuzzer_sys::fuzz_target;
use poll_core::{Choice, MAX_BODY_BYTES, MAX_REFERRAL_CHARS, is_json_content_type, parse_vote};

fuzz_target!(|body: &[u8]| {
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = is_json_content_type(text);
    }
    if body.len() > MAX_BODY_BYTES {
        // The component refuses these before parsing (413).
        return;
    }
    match parse_vote(body) {
        Ok(vote) => {
            assert!(Choice::ALL.contains(&vote.choice));
            let parsed: serde_json::Value =
                serde_json::from_slice(body).expect("an accepted body is JSON");
            assert!(parsed.is_object(), "an accepted body is an object");
            assert_eq!(parsed["choice"], vote.choice.id());
            if let Some(code) = &vote.referral {
                let code = code.as_str();
                assert!(!code.is_empty());
                assert_eq!(code, code.trim());
                assert!(code.chars().count() <= MAX_REFERRAL_CHARS);
                assert!(!code.chars().any(char::is_control));
            }
        }
        Err(e) => assert!(!e.detail().is_empty()),
    }
});
