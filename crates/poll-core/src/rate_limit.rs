//! The per-client vote rate limit's rules: how the `vote_rate_limit` and
//! `trust_forwarded_for` variables read, and which client a request counts
//! against. The counting itself lives in Redis (the vote component), so every
//! instance of the app shares one count per client.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The default of `vote_rate_limit` (spin.toml's `[variables]` must agree).
/// Sized for a whole room behind one conference-Wi-Fi NAT: 1,000 phones can
/// each vote twice (both QR codes) inside the same minute, while a script
/// (thousands of requests a second) is held to 40 a second on average.
pub const DEFAULT_VOTE_RATE_LIMIT: &str = "2400/60s";

/// Longest window accepted: longer ones are almost certainly a typo.
const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// At most `max` votes per client in each fixed `window` (the window starts
/// with the client's first vote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub window: Duration,
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}ms", self.max, self.window.as_millis())
    }
}

/// Reads `vote_rate_limit`: `"<max>/<window>"` with the window a whole number
/// and a unit (`ms`, `s`, `m`, `h`; none = seconds), e.g. `"600/60s"`,
/// `"10/10s"`, `"1000/1m"`. `"off"` turns the limit off (`Ok(None)`).
pub fn parse_rate_limit(raw: &str) -> Result<Option<RateLimit>, String> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let expected =
        || format!("expected \"<max>/<window>\" like \"600/60s\", or \"off\"; got {raw:?}");
    let (max, window) = raw.split_once('/').ok_or_else(expected)?;
    let max: u32 = max.trim().parse().map_err(|_| expected())?;
    if max == 0 {
        return Err(format!(
            "a limit of 0 votes refuses every vote; use \"off\" to disable the limit (got {raw:?})"
        ));
    }
    let window = parse_window(window.trim()).ok_or_else(expected)?;
    if window.is_zero() || window > MAX_WINDOW {
        return Err(format!(
            "the window must be between 1 ms and 24 h (got {raw:?})"
        ));
    }
    Ok(Some(RateLimit { max, window }))
}

fn parse_window(raw: &str) -> Option<Duration> {
    let digits = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => n,
        "" | "s" => n.checked_mul(1_000)?,
        "m" | "min" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

/// Reads `trust_forwarded_for`: `"true"` or `"false"` (any case).
pub fn parse_flag(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err(format!("expected \"true\" or \"false\", got {raw:?}")),
    }
}

/// Which client a vote counts against, as a short string safe to put in a
/// Redis key (it is always built from a parsed address, never from raw header
/// bytes).
///
/// - `spin_client_addr` is the socket peer Spin reports (`ip:port`); the port
///   is dropped, since every connection of one phone has another.
/// - `forwarded_for` is the `X-Forwarded-For` value; its first hop (the
///   original client as the proxies saw it) is used only when
///   `trust_forwarded_for` is set, i.e. behind an ingress whose own address
///   every request would otherwise share. Without a proxy that header is the
///   client's to invent, so it is ignored.
/// - IPv6 clients are keyed by their /64: one phone or home gets a whole /64,
///   and keying single addresses would let one device rotate through it.
///
/// A request with no usable address counts against `"unknown"`.
pub fn client_key(
    spin_client_addr: Option<&str>,
    forwarded_for: Option<&str>,
    trust_forwarded_for: bool,
) -> String {
    let forwarded = forwarded_for
        .filter(|_| trust_forwarded_for)
        .and_then(|v| v.split(',').next())
        .and_then(parse_address);
    match forwarded.or_else(|| spin_client_addr.and_then(parse_address)) {
        Some(ip) => key_for(ip),
        None => "unknown".to_owned(),
    }
}

/// An address as proxies and Spin write it: `ip`, `ip:port` or `[ipv6]:port`.
fn parse_address(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    raw.parse::<IpAddr>()
        .ok()
        .or_else(|| raw.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

fn key_for(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
    }
}

/// Whole seconds for `Retry-After`, rounded up so a client that waits that
/// long is let in; at least 1.
pub fn retry_after_secs(remaining: Duration) -> u64 {
    u64::try_from(remaining.as_millis().div_ceil(1000))
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: u32, ms: u64) -> Option<RateLimit> {
        Some(RateLimit {
            max,
            window: Duration::from_millis(ms),
        })
    }

    #[test]
    fn rate_limits_parse() {
        assert_eq!(
            parse_rate_limit(DEFAULT_VOTE_RATE_LIMIT),
            Ok(limit(2400, 60_000))
        );
        assert_eq!(parse_rate_limit("10/10s"), Ok(limit(10, 10_000)));
        assert_eq!(parse_rate_limit(" 120 / 60 "), Ok(limit(120, 60_000)));
        assert_eq!(parse_rate_limit("1000/1m"), Ok(limit(1000, 60_000)));
        assert_eq!(parse_rate_limit("5/500ms"), Ok(limit(5, 500)));
        assert_eq!(parse_rate_limit("5000/1h"), Ok(limit(5000, 3_600_000)));
        assert_eq!(parse_rate_limit("off"), Ok(None));
        assert_eq!(parse_rate_limit(" OFF "), Ok(None));
    }

    #[test]
    fn the_manifest_default_is_this_default() {
        let manifest = include_str!("../../../spin.toml");
        let line = format!("vote_rate_limit = {{ default = \"{DEFAULT_VOTE_RATE_LIMIT}\" }}");
        assert!(manifest.contains(&line), "spin.toml lacks `{line}`");
    }

    #[test]
    fn bad_rate_limits_say_what_is_expected() {
        for bad in [
            "",
            "on",
            "600",
            "600/",
            "/60s",
            "0/60s",
            "-1/60s",
            "600/0s",
            "600/60x",
            "600/-5s",
            "600/25h",
            "1.5/60s",
            "600/60s/2",
            "99999999999/1s",
        ] {
            let err = parse_rate_limit(bad).expect_err(bad);
            assert!(err.contains(&format!("{:?}", bad.trim())), "{bad}: {err}");
        }
        assert!(parse_rate_limit("0/60s").unwrap_err().contains("\"off\""));
    }

    #[test]
    fn flags() {
        assert_eq!(parse_flag("true"), Ok(true));
        assert_eq!(parse_flag(" TRUE "), Ok(true));
        assert_eq!(parse_flag("false"), Ok(false));
        assert_eq!(parse_flag(""), Ok(false));
        assert!(parse_flag("yes please").is_err());
    }

    #[test]
    fn the_socket_address_without_its_port() {
        assert_eq!(
            client_key(Some("203.0.113.7:51234"), None, false),
            "203.0.113.7"
        );
        assert_eq!(client_key(Some("203.0.113.7:1"), None, true), "203.0.113.7");
        assert_eq!(client_key(None, None, false), "unknown");
        assert_eq!(client_key(Some("garbage"), None, false), "unknown");
    }

    #[test]
    fn forwarded_for_only_when_trusted() {
        let xff = Some("198.51.100.9, 10.0.0.1");
        assert_eq!(client_key(Some("10.0.0.1:80"), xff, false), "10.0.0.1");
        assert_eq!(client_key(Some("10.0.0.1:80"), xff, true), "198.51.100.9");
        // Hops with ports, as some proxies write them.
        assert_eq!(
            client_key(None, Some("198.51.100.9:4711"), true),
            "198.51.100.9"
        );
        assert_eq!(
            client_key(None, Some("[2001:db8::1]:4711"), true),
            "2001:db8::/64"
        );
    }

    #[test]
    fn a_forged_or_broken_forwarded_for_falls_back_to_the_socket() {
        for xff in [
            "",
            "unknown",
            "<script>",
            "1.2.3.4\r\nX: y",
            "a:b:c",
            "*",
            "1.2.3.4.5",
        ] {
            assert_eq!(
                client_key(Some("10.0.0.1:80"), Some(xff), true),
                "10.0.0.1",
                "{xff:?}"
            );
        }
    }

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let a = client_key(Some("[2001:db8:1:2:aaaa::1]:5000"), None, false);
        let b = client_key(Some("[2001:db8:1:2:bbbb::2]:5001"), None, false);
        let other = client_key(Some("[2001:db8:1:3::1]:5000"), None, false);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(
            client_key(Some("[::ffff:192.0.2.1]:80"), None, false),
            "192.0.2.1"
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(0)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
    }
}
