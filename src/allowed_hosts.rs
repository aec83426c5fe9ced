//! `allowed_outbound_hosts`: which addresses a component may open. Entries look like
//! `scheme://host[:port]`, where the scheme and host may be `*`, the host may be `*.domain`, and
//! the port may be `*`, a number or a range `a..b`; a missing port means the scheme's usual one.

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid allowed_outbound_hosts entry {entry:?}: {reason}")]
pub struct AllowedHostError {
    entry: String,
    reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct AllowedHosts(Vec<AllowedHost>);

#[derive(Debug, Clone, PartialEq)]
struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Any,
    Exact(String),
    Subdomain(String),
}

#[derive(Debug, Clone, PartialEq)]
enum PortPattern {
    Any,
    Exact(u16),
    Range(u16, u16),
    WellKnown,
}

/// The port a scheme uses when an address does not name one.
pub fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl AllowedHosts {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, AllowedHostError> {
        entries
            .iter()
            .map(|e| AllowedHost::parse(e.as_ref()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `scheme://host:port` may be opened (`port` None = the scheme's usual port).
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let Some(port) = port.or_else(|| well_known_port(scheme)) else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        self.0.iter().any(|h| h.allows(scheme, &host, port))
    }

    /// Whether this component may call `http://<component>.spin.internal`.
    pub fn allows_chaining_to(&self, component: &str) -> bool {
        self.0.iter().any(|h| {
            h.scheme.as_deref().is_none_or(|s| s == "http")
                && match &h.host {
                    HostPattern::Exact(e) => *e == format!("{component}.spin.internal"),
                    HostPattern::Subdomain(d) => d == "spin.internal",
                    // A bare `*` does not grant chaining in Spin: internal calls must be named.
                    HostPattern::Any => false,
                }
        })
    }
}

impl AllowedHost {
    fn parse(entry: &str) -> Result<Self, AllowedHostError> {
        let err = |reason: &str| AllowedHostError {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| err("must start with a scheme, like `postgres://`"))?;
        if scheme.is_empty() {
            return Err(err("empty scheme"));
        }
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err(err("must not contain a path"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
            _ => (rest, None),
        };
        let host = match host {
            "" => return Err(err("empty host")),
            "*" => HostPattern::Any,
            h if h.starts_with("*.") => HostPattern::Subdomain(h[2..].to_ascii_lowercase()),
            h if h.contains('*') => {
                return Err(err("wildcards are only allowed as `*` or `*.domain`"));
            }
            h => HostPattern::Exact(h.to_ascii_lowercase()),
        };
        let port = match port {
            None => PortPattern::WellKnown,
            Some("*") => PortPattern::Any,
            Some(p) => match p.split_once("..") {
                Some((a, b)) => {
                    let a = a.parse().map_err(|_| err("invalid port range start"))?;
                    let b = b.parse().map_err(|_| err("invalid port range end"))?;
                    if a >= b {
                        return Err(err("empty port range"));
                    }
                    PortPattern::Range(a, b)
                }
                None => PortPattern::Exact(p.parse().map_err(|_| err("invalid port"))?),
            },
        };
        if port == PortPattern::WellKnown && scheme != "*" && well_known_port(scheme).is_none() {
            return Err(err("this scheme has no default port; name one"));
        }
        Ok(Self {
            scheme: (scheme != "*").then(|| scheme.to_owned()),
            host,
            port,
        })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s == scheme);
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Subdomain(d) => host
                .strip_suffix(d.as_str())
                .is_some_and(|p| p.ends_with('.') && p.len() > 1),
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => p == port,
            PortPattern::Range(a, b) => (a..b).contains(&port),
            PortPattern::WellKnown => well_known_port(scheme) == Some(port),
        };
        scheme_ok && host_ok && port_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_host_and_default_port() {
        let a = AllowedHosts::parse(&["postgres://db.local"]).unwrap();
        assert!(a.allows("postgres", "db.local", None));
        assert!(a.allows("postgres", "DB.local", Some(5432)));
        assert!(!a.allows("postgres", "db.local", Some(5433)));
        assert!(!a.allows("redis", "db.local", None));
        assert!(!a.allows("postgres", "other", None));
    }

    #[test]
    fn wildcards_and_ranges() {
        let a = AllowedHosts::parse(&["redis://*:6000..7000", "*://*.example.com:*"]).unwrap();
        assert!(a.allows("redis", "anything", Some(6379)));
        assert!(!a.allows("redis", "anything", Some(7000)));
        assert!(a.allows("postgres", "db.example.com", Some(1)));
        assert!(!a.allows("postgres", "example.com", Some(1)));
    }

    #[test]
    fn ip_hosts_with_ports() {
        let a = AllowedHosts::parse(&["postgres://127.0.0.1:5432"]).unwrap();
        assert!(a.allows("postgres", "127.0.0.1", Some(5432)));
        assert!(a.allows("postgres", "127.0.0.1", None));
    }

    #[test]
    fn chaining_needs_a_named_or_wildcard_internal_host() {
        let a = AllowedHosts::parse(&["http://referral.spin.internal"]).unwrap();
        assert!(a.allows_chaining_to("referral"));
        assert!(!a.allows_chaining_to("vote"));
        assert!(
            AllowedHosts::parse(&["http://*.spin.internal"])
                .unwrap()
                .allows_chaining_to("x")
        );
        assert!(
            !AllowedHosts::parse(&["*://*:*"])
                .unwrap()
                .allows_chaining_to("x")
        );
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "db.local",
            "postgres://",
            "postgres://a/b",
            "postgres://a:x",
            "foo://h",
        ] {
            assert!(AllowedHosts::parse(&[bad]).is_err(), "{bad}");
        }
    }
}
