//! The static assets, embedded and fingerprinted by build.rs.

/// One file of `static/`.
pub(crate) struct Asset {
    /// Path below `/static/`, e.g. `app.css`.
    pub name: &'static str,
    /// The same with a content hash, e.g. `app.0123456789.css`.
    pub hashed_name: &'static str,
    /// The file as it is in the repository.
    pub body: &'static [u8],
    /// What the hashed name serves when it differs from the file (stylesheets, whose
    /// `url()`s point at hashed names).
    pub rewritten: Option<&'static [u8]>,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// How a request for an asset is answered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// The current fingerprint: cacheable forever.
    Fingerprinted(&'static [u8]),
    /// The plain name, or a fingerprint from another build (a page rendered by an older or
    /// newer replica during a rollout): served, but revalidated.
    Unversioned(&'static [u8]),
}

/// Looks up a path below `/static/`.
pub(crate) fn find(rel: &str) -> Option<Found> {
    if let Some(a) = ASSETS.iter().find(|a| a.hashed_name == rel) {
        return Some(Found::Fingerprinted(a.rewritten.unwrap_or(a.body)));
    }
    if let Some(a) = ASSETS.iter().find(|a| a.name == rel) {
        return Some(Found::Unversioned(a.body));
    }
    let plain = strip_fingerprint(rel)?;
    ASSETS
        .iter()
        .find(|a| a.name == plain)
        .map(|a| Found::Unversioned(a.rewritten.unwrap_or(a.body)))
}

/// `dir/app.0123456789.css` → `dir/app.css`, when the middle part looks like a hash.
fn strip_fingerprint(rel: &str) -> Option<String> {
    let (rest, ext) = rel.rsplit_once('.')?;
    let (stem, hash) = rest.rsplit_once('.')?;
    let looks_hashed = hash.len() == 10 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    looks_hashed.then(|| format!("{stem}.{ext}"))
}

/// The fingerprinted URL of `name` (a path below `static/`), for links in pages.
///
/// An unknown name yields the plain URL, which then 404s visibly; the unit tests check
/// that every name the templates use exists.
pub fn url(name: &str) -> String {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => format!("/static/{}", a.hashed_name),
        None => format!("/static/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprinted_and_plain_names_resolve() {
        let css = ASSETS.iter().find(|a| a.name == "app.css").unwrap();
        assert_ne!(css.hashed_name, css.name);
        assert!(matches!(
            find(css.hashed_name),
            Some(Found::Fingerprinted(_))
        ));
        assert_eq!(find("app.css"), Some(Found::Unversioned(css.body)));
        // Another build's fingerprint still gets today's (rewritten) stylesheet.
        assert!(matches!(
            find("app.0000000000.css"),
            Some(Found::Unversioned(b)) if Some(b) == css.rewritten
        ));
        assert_eq!(find("app.zzzzzzzzzz.css"), None);
        assert_eq!(find("nope.css"), None);
        assert_eq!(url("app.css"), format!("/static/{}", css.hashed_name));
    }

    #[test]
    fn plain_names_serve_the_repository_file_byte_for_byte() {
        for a in ASSETS {
            let path = format!("{}/../../static/{}", env!("CARGO_MANIFEST_DIR"), a.name);
            assert_eq!(std::fs::read(&path).unwrap(), a.body, "{}", a.name);
        }
    }

    #[test]
    fn stylesheets_link_fingerprinted_assets_only() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".css")) {
            let css = std::str::from_utf8(a.rewritten.unwrap()).unwrap();
            for (at, _) in css.match_indices("url(") {
                let target = css[at + 4..].trim_start_matches(['"', '\'']);
                let target = &target[..target.find(['"', '\'', ')']).unwrap()];
                let rel = target.strip_prefix("/static/").unwrap();
                assert!(
                    matches!(find(rel), Some(Found::Fingerprinted(_))),
                    "{}: {target}",
                    a.name
                );
            }
        }
    }

    #[test]
    fn licences_and_docs_are_not_served() {
        assert!(ASSETS.iter().all(|a| a.name.contains('.')));
        assert!(!ASSETS.iter().any(|a| a.name.ends_with(".md")));
        assert!(
            ASSETS
                .iter()
                .any(|a| a.name.starts_with("fonts/") && a.name.ends_with(".woff2"))
        );
    }
}
