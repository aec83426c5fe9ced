//! The poll's domain, free of any Spin or WASI dependency so it builds and is
//! tested natively as well as for `wasm32-wasip2`.
//!
//! Everything here is part of the HTTP contract (BRIEF §5): choice ids and
//! labels, the exact error bodies, the vote request and response shapes and
//! the results JSON. Components only add I/O around it.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod choice;
pub mod counts;
mod detail;
mod encoding;
pub mod rate_limit;
pub mod referral;
mod results;
mod vote;

pub use choice::{Choice, INVALID_CHOICE_DETAIL};
pub use detail::{ErrorBody, INVALID_REFERRAL_DETAIL, NOT_FOUND_DETAIL, error_body};
pub use encoding::{percent_decode, percent_encode};
pub use rate_limit::{
    DEFAULT_VOTE_RATE_LIMIT, RateLimit, client_key, parse_flag, parse_rate_limit, retry_after_secs,
};
pub use results::{CounterError, Tally, parse_counter};
pub use vote::{
    MAX_BODY_BYTES, MAX_REFERRAL_CHARS, ReferralCode, Vote, VoteError, VoteReceipt,
    is_json_content_type, parse_vote,
};

/// Redis key of the running counter for `choice`, e.g. `honey:votes:print`.
///
/// The prefix comes from the `redis_prefix` variable so several deployments
/// can share one Redis; it is used verbatim (include the trailing `:`).
pub fn vote_key(prefix: &str, choice: Choice) -> String {
    format!("{prefix}votes:{}", choice.id())
}

/// Path on the referral component that validates `code`
/// (`/referrals/<percent-encoded code>`).
pub fn referral_path(code: &ReferralCode) -> String {
    format!("/referrals/{}", percent_encode(code.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_keys_use_prefix_verbatim() {
        assert_eq!(vote_key("honey:", Choice::Print), "honey:votes:print");
        assert_eq!(vote_key("", Choice::Restart), "votes:restart");
        assert_eq!(vote_key("talk-2026/", Choice::Ai), "talk-2026/votes:ai");
    }

    #[test]
    fn vote_keys_are_distinct_per_choice() {
        let keys: std::collections::HashSet<_> =
            Choice::ALL.iter().map(|c| vote_key("p:", *c)).collect();
        assert_eq!(keys.len(), Choice::ALL.len());
    }

    #[test]
    fn referral_path_encodes_the_code() {
        let plain = ReferralCode::parse("conf-partner-2026").unwrap().unwrap();
        assert_eq!(referral_path(&plain), "/referrals/conf-partner-2026");

        let odd = ReferralCode::parse("a b/c?d#e%").unwrap().unwrap();
        assert_eq!(referral_path(&odd), "/referrals/a%20b%2Fc%3Fd%23e%25");
    }
}
