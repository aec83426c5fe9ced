//! The human-facing pages: `/` (vote, phones), `/results` (projector), `/qr` (the two QR
//! codes of the talk), `/admin`, and their assets under `/static/...`.
//!
//! Pages are rendered per request with askama (branding and URLs come from Spin variables
//! and the query string); assets are embedded at build time with content-hashed names
//! (see build.rs). Nothing is inline, so the CSP can be `default-src 'self'`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod assets;
mod qr;
mod site;
mod views;

use askama::Template;
use guest_kit::{
    HeaderValue, HttpResponse, Method, StatusCode, error, header, method_not_allowed, not_found,
    response_with_body,
};
use spin_sdk::http::Request;
use spin_sdk::http_service;

use assets::Found;
use site::{Query, Site};

/// Everything from this origin, nothing inline, no plugins, no framing (the projector page
/// has no reason to be embedded elsewhere), forms post only here.
const CSP: HeaderValue = HeaderValue::from_static(
    "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'",
);
// Pages revalidate on every load so a redeploy shows at once; they are small.
const PAGE_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
// A fingerprinted name never changes content (build.rs), so phones keep it.
const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
// Plain names, and fingerprints of another build during a rollout: briefly.
const SHORT: HeaderValue = HeaderValue::from_static("public, max-age=300");

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Page {
    Vote,
    Results,
    Qr,
    Admin,
}

#[derive(Debug, PartialEq, Eq)]
enum Target {
    Page(Page),
    /// A file below `/static/`, by relative path.
    Asset(String),
}

#[http_service]
async fn handle(request: Request) -> HttpResponse {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return method_not_allowed("GET, HEAD");
    }
    match route(request.uri().path()) {
        Some(Target::Page(page)) => {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            let site = Site::load(host).await;
            let query = Query::parse(request.uri().query().unwrap_or(""));
            render(page, &site, &query)
        }
        Some(Target::Asset(rel)) => serve_asset(&rel),
        None => not_found(),
    }
}

fn route(path: &str) -> Option<Target> {
    match path {
        "/" => Some(Target::Page(Page::Vote)),
        "/results" => Some(Target::Page(Page::Results)),
        "/qr" => Some(Target::Page(Page::Qr)),
        "/admin" => Some(Target::Page(Page::Admin)),
        _ => path
            .strip_prefix("/static/")
            .filter(|rel| is_safe_relative_path(rel))
            .map(|rel| Target::Asset(rel.to_owned())),
    }
}

/// Only plain names below the root: no `..`, no empty or hidden segments, no escapes or
/// backslashes. Assets are looked up in an embedded table, so this is belt and braces.
fn is_safe_relative_path(rel: &str) -> bool {
    !rel.is_empty()
        && rel.split('/').all(|segment| {
            !segment.is_empty()
                && !segment.starts_with('.')
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

fn content_type(file: &str) -> Option<&'static str> {
    let ext = file.rsplit_once('.')?.1;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => return None,
    })
}

fn page_html(page: Page, site: &Site, query: &Query) -> Result<String, String> {
    let rendered = match page {
        Page::Vote => views::vote(site, query).render(),
        Page::Results => views::results(site, query).render(),
        Page::Qr => views::qr(site, query)
            .map_err(|e| format!("QR code: {e}"))?
            .render(),
        Page::Admin => views::admin(site, query).render(),
    };
    rendered.map_err(|e| e.to_string())
}

fn render(page: Page, site: &Site, query: &Query) -> HttpResponse {
    match page_html(page, site, query) {
        Ok(html) => with_security_headers(
            response_with_body(
                StatusCode::OK,
                HeaderValue::from_static("text/html; charset=utf-8"),
                html,
            ),
            PAGE_CACHE,
        ),
        Err(e) => {
            eprintln!("pages: cannot render {page:?}: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "Page unavailable")
        }
    }
}

fn serve_asset(rel: &str) -> HttpResponse {
    // Unknown kinds are not served: guessing a type invites sniffing.
    let Some(kind) = content_type(rel) else {
        return not_found();
    };
    let (body, cache) = match assets::find(rel) {
        Some(Found::Fingerprinted(body)) => (body, IMMUTABLE),
        Some(Found::Unversioned(body)) => (body, SHORT),
        None => return not_found(),
    };
    with_security_headers(
        response_with_body(StatusCode::OK, HeaderValue::from_static(kind), body),
        cache,
    )
}

fn with_security_headers(mut response: HttpResponse, cache: HeaderValue) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, cache);
    headers.insert(header::CONTENT_SECURITY_POLICY, CSP);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Referral codes travel in the page URL; keep them on this origin.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use poll_core::Choice;

    fn site() -> Site {
        Site::from_vars(
            |name| {
                Some(
                    match name {
                        "conference_name" => "Honey <Conf> & \"Friends\"",
                        "conference_city" => "New York",
                        "public_url" => "https://honey.example.org/",
                        "referral_code" => "conf-partner-2026",
                        _ => "",
                    }
                    .to_owned(),
                )
            },
            None,
        )
    }

    fn html(page: Page, query: &str) -> String {
        page_html(page, &site(), &Query::parse(query)).unwrap()
    }

    const ALL: [Page; 4] = [Page::Vote, Page::Results, Page::Qr, Page::Admin];

    #[test]
    fn pages_route() {
        assert_eq!(route("/"), Some(Target::Page(Page::Vote)));
        assert_eq!(route("/results"), Some(Target::Page(Page::Results)));
        assert_eq!(route("/qr"), Some(Target::Page(Page::Qr)));
        assert_eq!(route("/admin"), Some(Target::Page(Page::Admin)));
        assert_eq!(
            route("/static/app.css"),
            Some(Target::Asset("app.css".into()))
        );
        assert_eq!(
            route("/static/img/logo.svg"),
            Some(Target::Asset("img/logo.svg".into()))
        );
    }

    #[test]
    fn unknown_and_hostile_paths_do_not_route() {
        for path in [
            "",
            "/nope",
            "/results/",
            "/static",
            "/static/",
            "/static/../Cargo.toml",
            "/static/a/../../etc/passwd",
            "/static/..%2f..%2fetc%2fpasswd",
            "/static/%2e%2e/secret",
            "/static//etc/passwd",
            "/static/.hidden",
            "/static/a\\..\\b.js",
            "/static/a/./b.js",
            "/staticx/app.js",
        ] {
            assert_eq!(route(path), None, "{path}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("index.html"), Some("text/html; charset=utf-8"));
        assert_eq!(
            content_type("vote.js"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(content_type("app.css"), Some("text/css; charset=utf-8"));
        assert_eq!(content_type("logo.svg"), Some("image/svg+xml"));
        assert_eq!(content_type("a.woff2"), Some("font/woff2"));
        assert_eq!(content_type("README"), None);
        assert_eq!(content_type("x.exe"), None);
    }

    #[test]
    fn every_embedded_asset_has_a_content_type() {
        for a in assets::ASSETS {
            assert!(content_type(a.name).is_some(), "{}", a.name);
        }
    }

    /// Text content of markup, roughly: tags dropped, the entities askama writes decoded.
    fn text(html: &str) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                _ if !in_tag => out.push(c),
                _ => {}
            }
        }
        out.replace("&#39;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    #[test]
    fn vote_page_offers_every_choice_in_order() {
        let page = html(Page::Vote, "");
        assert!(text(&page).contains(views::QUESTION));
        let mut last = 0;
        for choice in Choice::ALL {
            let marker = format!("data-choice=\"{}\"", choice.id());
            let at = page.find(&marker).unwrap_or_else(|| panic!("{marker}"));
            assert!(at > last, "{} out of order", choice.id());
            last = at;
            let button = &page[at..at + page[at..].find("</button>").unwrap()];
            assert!(text(button).contains(choice.label()), "{}", choice.label());
        }
    }

    #[test]
    fn results_and_admin_pages_have_a_row_per_choice_in_order() {
        for page in [Page::Results, Page::Admin] {
            let page = html(page, "");
            let mut last = 0;
            for choice in Choice::ALL {
                let at = page
                    .find(&format!("data-choice=\"{}\"", choice.id()))
                    .unwrap();
                assert!(at > last);
                last = at;
            }
        }
    }

    #[test]
    fn branding_is_escaped_and_overridable() {
        for page in ALL {
            let out = html(page, "");
            assert!(
                out.contains("Honey &#60;Conf&#62; &#38; &#34;Friends&#34;")
                    || out.contains("Honey &lt;Conf&gt; &amp; &quot;Friends&quot;"),
                "{page:?}: {out}"
            );
            assert!(!out.contains("<Conf>"), "{page:?}");
            assert!(out.contains("New York"));

            let out = html(page, "conf=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E");
            assert!(!out.contains("<img src=x"), "{page:?}");
            assert!(
                !out.contains("Friends"),
                "{page:?}: ?conf= replaces the name"
            );
            // Links to the other pages keep the branding (the projector page has none).
            if page != Page::Results {
                assert!(out.contains("?conf=%3Cimg%20src%3Dx"), "{page:?}");
            }
        }
    }

    #[test]
    fn referral_is_rendered_escaped_for_the_script() {
        let out = html(Page::Vote, "referral=conf-partner-2026");
        assert!(out.contains("data-referral=\"conf-partner-2026\""));
        assert!(text(&out).contains("conf-partner-2026"));

        let out = html(Page::Vote, "referral=%22%3E%3Cscript%3Ex%3C%2Fscript%3E");
        assert!(!out.contains("<script>x"));
        // The attribute holds the whole code: no quote ends it early.
        let attr = out.split("data-referral=\"").nth(1).unwrap();
        let value = &attr[..attr.find('"').unwrap()];
        assert!(value.contains("script") && !value.contains('<'), "{value}");

        let out = html(Page::Vote, "");
        assert!(out.contains("data-referral=\"\""));
        assert!(!out.contains("Partner code"));
    }

    #[test]
    fn qr_page_encodes_both_links_and_prints_them() {
        let out = html(Page::Qr, "");
        let left = "https://honey.example.org/";
        let right = "https://honey.example.org/?referral=conf-partner-2026";
        assert!(out.contains(&format!("data-qr-url>{left}</p>")), "{out}");
        assert!(out.contains(&format!("data-qr-url>{right}</p>")));
        assert_eq!(out.matches("<svg").count(), 2);
        assert!(out.find(left).unwrap() < out.find(right).unwrap());

        let out = html(Page::Qr, "conf=KubeCon");
        assert!(out.contains("data-qr-url>https://honey.example.org/?conf=KubeCon</p>"));
        assert!(out.contains(
            "data-qr-url>https://honey.example.org/?referral=conf-partner-2026&#38;conf=KubeCon</p>"
        ) || out.contains(
            "data-qr-url>https://honey.example.org/?referral=conf-partner-2026&amp;conf=KubeCon</p>"
        ));
    }

    #[test]
    fn pages_have_no_inline_script_or_style_and_only_local_assets() {
        for page in ALL {
            let out = html(page, "");
            // The absolute URLs allowed are the SVG namespace of the QR codes and the
            // app's own public URL printed under them.
            let cleaned = out
                .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
                .replace("https://honey.example.org", "");
            for bad in ["<style", " style=", "javascript:", "http://", "https://"] {
                assert!(!cleaned.contains(bad), "{page:?} contains {bad:?}");
            }
            // No event-handler attributes (` onclick=` and friends).
            for (at, _) in cleaned.match_indices(" on") {
                let name: String = cleaned[at + 1..]
                    .chars()
                    .take_while(char::is_ascii_alphabetic)
                    .collect();
                let after = &cleaned[at + 1 + name.len()..];
                assert!(!after.starts_with('='), "{page:?}: {name}= handler");
            }
            for (at, _) in out.match_indices("<script") {
                let tag = &out[at..at + out[at..].find('>').unwrap()];
                assert!(tag.contains("src=\"/static/"), "{page:?}: inline {tag}");
            }
        }
    }

    #[test]
    fn pages_link_fingerprinted_assets_that_exist() {
        for page in ALL {
            let out = html(page, "");
            let mut links = 0;
            for (at, _) in out.match_indices("\"/static/") {
                let rest = &out[at + "\"/static/".len()..];
                let rel = &rest[..rest.find('"').unwrap()];
                assert!(
                    matches!(assets::find(rel), Some(Found::Fingerprinted(_))),
                    "{page:?}: /static/{rel}"
                );
                links += 1;
            }
            assert!(links >= 3, "{page:?}: stylesheet, icon and font at least");
        }
    }

    #[test]
    fn security_headers_on_pages_and_assets() {
        let r = render(Page::Vote, &site(), &Query::default());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.starts_with("default-src 'self'"));
        assert!(!csp.contains("unsafe"));
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(r.headers()[header::REFERRER_POLICY], "same-origin");

        let css = assets::url("app.css");
        let r = serve_asset(css.strip_prefix("/static/").unwrap());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");

        let r = serve_asset("app.css");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "public, max-age=300");
        assert_eq!(serve_asset("nope.css").status(), StatusCode::NOT_FOUND);
        assert_eq!(
            serve_asset("fonts/bungee/LICENSE").status(),
            StatusCode::NOT_FOUND
        );
    }
}
