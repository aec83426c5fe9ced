//! HTTP route matching with Spin's rules: exact routes beat wildcards (`/prefix/...`), and among
//! wildcards the longest prefix wins. Private routes are reachable only by service chaining.

#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<RouteEntry>,
}

#[derive(Debug, Clone)]
struct RouteEntry {
    pattern: Pattern,
    component: String,
    raw: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

/// What a request path matched: the component, and the route parts Spin passes to the guest.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch<'a> {
    pub component: &'a str,
    /// The route as written in the manifest, e.g. `/referrals/...`.
    pub raw_route: &'a str,
    /// The matched part of the path (the route without its wildcard).
    pub matched: String,
    /// The rest of the path after the matched prefix (`spin-path-info`).
    pub path_info: String,
}

fn normalise(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    }
}

impl Router {
    pub fn new<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let routes = routes
            .into_iter()
            .map(|(route, component)| {
                let pattern = match route.strip_suffix("/...") {
                    Some(prefix) => Pattern::Prefix(normalise(prefix)),
                    None if route == "/..." => Pattern::Prefix("/".into()),
                    None => Pattern::Exact(normalise(route)),
                };
                RouteEntry {
                    pattern,
                    component: component.to_owned(),
                    raw: route.to_owned(),
                }
            })
            .collect();
        Self { routes }
    }

    /// (route as written, component) pairs, for the start-up banner.
    pub fn describe(&self) -> Vec<(String, String)> {
        self.routes
            .iter()
            .map(|r| (r.raw.clone(), r.component.clone()))
            .collect()
    }

    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        let path = normalise(path);
        let mut best: Option<(&RouteEntry, usize)> = None;
        for entry in &self.routes {
            let score = match &entry.pattern {
                Pattern::Exact(p) if *p == path => usize::MAX,
                Pattern::Exact(_) => continue,
                Pattern::Prefix(p) if p == "/" => 1,
                Pattern::Prefix(p)
                    if path == *p
                        || (path.starts_with(p.as_str()) && path.as_bytes()[p.len()] == b'/') =>
                {
                    p.len() + 1
                }
                Pattern::Prefix(_) => continue,
            };
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((entry, score));
            }
        }
        best.map(|(entry, _)| {
            let (matched, path_info) = match &entry.pattern {
                Pattern::Exact(p) => (p.clone(), String::new()),
                Pattern::Prefix(p) if p == "/" => (String::new(), path.clone()),
                Pattern::Prefix(p) => (p.clone(), path[p.len()..].to_owned()),
            };
            RouteMatch {
                component: &entry.component,
                raw_route: &entry.raw,
                matched,
                path_info,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new([
            ("/vote", "vote"),
            ("/votes", "results"),
            ("/referrals/...", "referral"),
            ("/...", "pages"),
        ])
    }

    #[test]
    fn exact_routes_beat_wildcards() {
        let r = router();
        assert_eq!(r.route("/vote").unwrap().component, "vote");
        assert_eq!(r.route("/vote/").unwrap().component, "vote");
        assert_eq!(r.route("/votes").unwrap().component, "results");
        assert_eq!(r.route("/voter").unwrap().component, "pages");
    }

    #[test]
    fn longest_wildcard_wins_and_path_info_is_the_rest() {
        let r = router();
        let m = r.route("/referrals/abc").unwrap();
        assert_eq!(m.component, "referral");
        assert_eq!(m.path_info, "/abc");
        assert_eq!(m.matched, "/referrals");
        assert_eq!(r.route("/referrals").unwrap().component, "referral");
        assert_eq!(r.route("/referralsx").unwrap().component, "pages");
        let root = r.route("/static/app.css").unwrap();
        assert_eq!(root.component, "pages");
        assert_eq!(root.path_info, "/static/app.css");
    }

    #[test]
    fn no_catch_all_means_no_match() {
        let r = Router::new([("/vote", "vote")]);
        assert!(r.route("/other").is_none());
    }
}
