//! What a page is about: the conference's branding and the app's public URL (Spin
//! variables), plus what the visitor's query string may change (`?conf=`, `?referral=`).

use poll_core::{percent_decode, percent_encode};

/// Longest conference name taken from `?conf=`: a name, not a message.
const MAX_CONF_CHARS: usize = 60;
/// Longest referral code echoed into a page; a longer one is invalid anyway, the vote
/// endpoint says so.
const MAX_REFERRAL_CHARS: usize = 200;

pub const DEFAULT_NAME: &str = "Honey Conf";
pub const DEFAULT_REFERRAL_CODE: &str = "conf-partner-2026";

/// Server-side defaults, from the component's variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub name: String,
    pub city: String,
    /// A same-origin URL (path) of the logo, or none.
    pub logo: Option<String>,
    /// Scheme and authority (and an optional base path) without a trailing slash, e.g.
    /// `https://honey.example.org`; what the QR codes point to.
    pub public_url: String,
    /// The partner code of the right-hand QR code.
    pub referral_code: String,
}

impl Site {
    /// Reads the variables; a missing or failing one falls back to a default, so a page
    /// always renders. `host` (the request's Host header) stands in for an unset public URL.
    pub async fn load(host: Option<&str>) -> Site {
        let mut vars = Vec::new();
        for name in [
            "conference_name",
            "conference_city",
            "conference_logo",
            "public_url",
            "referral_code",
        ] {
            let value = match spin_sdk::variables::get(name).await {
                Ok(v) => Some(v),
                Err(e) => {
                    eprintln!("pages: variable {name}: {e}; using the default");
                    None
                }
            };
            vars.push((name, value));
        }
        let get = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| v.clone())
        };
        Site::from_vars(get, host)
    }

    pub fn from_vars(get: impl Fn(&str) -> Option<String>, host: Option<&str>) -> Site {
        let text = |name: &str| get(name).map(|v| v.trim().to_owned()).unwrap_or_default();
        let name = Some(text("conference_name"))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_NAME.to_owned());
        let public_url = normalise_public_url(&text("public_url"), host);
        let logo = same_origin_logo(&text("conference_logo"), &public_url);
        let referral_code = Some(text("referral_code"))
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| DEFAULT_REFERRAL_CODE.to_owned());
        Site {
            name,
            city: text("conference_city"),
            logo,
            public_url,
            referral_code,
        }
    }

    /// The public URL without its scheme, for "vote at …" lines on the projector.
    pub fn public_host(&self) -> &str {
        self.public_url
            .split_once("://")
            .map_or(self.public_url.as_str(), |(_, rest)| rest)
    }
}

fn normalise_public_url(raw: &str, host: Option<&str>) -> String {
    let raw = raw.trim_end_matches('/');
    if (raw.starts_with("http://") || raw.starts_with("https://")) && raw.len() > "https://".len() {
        return raw.to_owned();
    }
    if !raw.is_empty() {
        eprintln!("pages: public_url {raw:?} is not an http(s) URL; using the Host header");
    }
    match host.map(str::trim).filter(|h| is_plain_host(h)) {
        Some(h) => format!("http://{h}"),
        None => "http://127.0.0.1:3000".to_owned(),
    }
}

/// A Host header that is only a name or address and a port: nothing that could smuggle a
/// path or markup into a URL we print.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The logo is shown only when it is served by this app: the pages make no third-party
/// requests (and their CSP would refuse one). A path (`/static/logo.svg`) or a URL on the
/// public URL's origin is taken; anything else is ignored with a log line.
fn same_origin_logo(raw: &str, public_url: &str) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    let path = if raw.starts_with('/') && !raw.starts_with("//") {
        Some(raw)
    } else {
        origin(public_url)
            .and_then(|o| raw.strip_prefix(o.as_str()))
            .filter(|rest| rest.starts_with('/'))
    };
    match path {
        Some(p) if p.bytes().all(|b| b.is_ascii_graphic()) => Some(
            p.strip_prefix("/static/")
                .map_or_else(|| p.to_owned(), crate::assets::url),
        ),
        _ => {
            eprintln!("pages: conference_logo {raw:?} is not served by this app; not shown");
            None
        }
    }
}

/// `https://host:port/base` → `https://host:port`.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    Some(format!("{scheme}://{authority}"))
}

/// What the visitor's query string asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    /// `?conf=`: a conference name shown instead of the default one.
    pub conf: Option<String>,
    /// `?referral=`: the partner code the vote carries.
    pub referral: Option<String>,
}

impl Query {
    pub fn parse(query: &str) -> Query {
        let mut q = Query::default();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(value) = form_decode(value) else {
                continue;
            };
            match key {
                "conf" => q.conf = clean(&value, MAX_CONF_CHARS),
                "referral" => q.referral = clean(&value, MAX_REFERRAL_CHARS),
                _ => {}
            }
        }
        q
    }

    /// `?conf=…` to append to links between the pages, so a chosen branding sticks.
    pub fn conf_suffix(&self, first: bool) -> String {
        match &self.conf {
            Some(c) => format!(
                "{}conf={}",
                if first { '?' } else { '&' },
                percent_encode(c)
            ),
            None => String::new(),
        }
    }
}

/// `application/x-www-form-urlencoded` value: `+` is a space.
fn form_decode(value: &str) -> Option<String> {
    percent_decode(&value.replace('+', " "))
}

/// Trimmed, without control characters, at most `max` characters; none when empty.
fn clean(value: &str, max: usize) -> Option<String> {
    let cleaned: String = value
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect();
    let cleaned = cleaned.trim().to_owned();
    (!cleaned.is_empty()).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(vars: &[(&str, &str)], host: Option<&str>) -> Site {
        Site::from_vars(
            |n| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| (*v).to_owned())
            },
            host,
        )
    }

    #[test]
    fn defaults_when_variables_are_missing() {
        let s = site(&[], None);
        assert_eq!(s.name, DEFAULT_NAME);
        assert_eq!(s.city, "");
        assert_eq!(s.logo, None);
        assert_eq!(s.public_url, "http://127.0.0.1:3000");
        assert_eq!(s.referral_code, DEFAULT_REFERRAL_CODE);
        let s = site(&[("public_url", "")], Some("10.0.0.7:8080"));
        assert_eq!(s.public_url, "http://10.0.0.7:8080");
        // A hostile Host header is not printed into URLs.
        let s = site(&[], Some("evil.example/<script>"));
        assert_eq!(s.public_url, "http://127.0.0.1:3000");
    }

    #[test]
    fn public_url_loses_its_trailing_slash() {
        let s = site(&[("public_url", " https://honey.example.org/ ")], None);
        assert_eq!(s.public_url, "https://honey.example.org");
        assert_eq!(s.public_host(), "honey.example.org");
        let s = site(&[("public_url", "ftp://x")], Some("h:1"));
        assert_eq!(s.public_url, "http://h:1");
    }

    #[test]
    fn only_same_origin_logos_are_shown() {
        let public = ("public_url", "https://honey.example.org");
        let s = site(&[public, ("conference_logo", "/img/logo.png")], None);
        assert_eq!(s.logo.as_deref(), Some("/img/logo.png"));
        let s = site(
            &[
                public,
                ("conference_logo", "https://honey.example.org/l.svg"),
            ],
            None,
        );
        assert_eq!(s.logo.as_deref(), Some("/l.svg"));
        let s = site(&[public, ("conference_logo", "/static/img/cab.svg")], None);
        assert_eq!(s.logo, Some(crate::assets::url("img/cab.svg")));
        for bad in [
            "https://cdn.example.com/logo.png",
            "//cdn.example.com/logo.png",
            "https://honey.example.org.evil.com/x.png",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "/a b.png",
        ] {
            let s = site(&[public, ("conference_logo", bad)], None);
            assert_eq!(s.logo, None, "{bad}");
        }
    }

    #[test]
    fn query_parameters() {
        let q = Query::parse("referral=conf-partner-2026&conf=KubeCon+EU%20%F0%9F%90%9D");
        assert_eq!(q.referral.as_deref(), Some("conf-partner-2026"));
        assert_eq!(q.conf.as_deref(), Some("KubeCon EU 🐝"));
        assert_eq!(q.conf_suffix(true), "?conf=KubeCon%20EU%20%F0%9F%90%9D");
        assert_eq!(q.conf_suffix(false), "&conf=KubeCon%20EU%20%F0%9F%90%9D");

        assert_eq!(Query::parse(""), Query::default());
        assert_eq!(Query::parse("conf=&referral=%20"), Query::default());
        assert_eq!(Query::parse("conf=%zz").conf, None);
        assert_eq!(Query::default().conf_suffix(true), "");
        // Control characters go, length is capped (in characters, not bytes).
        let q = Query::parse(&format!("conf=a%0Ab%00c{}", "é".repeat(100)));
        let conf = q.conf.unwrap();
        assert!(conf.starts_with("abc"));
        assert_eq!(conf.chars().count(), MAX_CONF_CHARS);
        // A repeated key: the last one wins. The script sends the rendered value, so
        // what the page shows and what the vote carries cannot disagree.
        assert_eq!(
            Query::parse("referral=a&referral=b").referral.as_deref(),
            Some("b")
        );
    }
}
