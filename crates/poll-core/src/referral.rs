//! How referral codes are looked up in `referral_partners`. The referral component runs these
//! queries; `preflight` times them against a database's `statement_timeout` before a talk.

/// The code on the talk's referral QR code (the right-hand one).
pub const KNOWN_CODE: &str = "conf-partner-2026";

/// Every partner whose code has the same key as `$1` (case, separators and look-alike
/// characters ignored; see migrations/002_referral_code_key.sql).
pub const BY_KEY_SQL: &str = "SELECT partner_name FROM referral_partners \
     WHERE referral_code_key(code) = referral_code_key($1)";

/// The partner whose code is exactly `$1`.
pub const EXACT_SQL: &str = "SELECT partner_name FROM referral_partners WHERE code = $1 LIMIT 2";
