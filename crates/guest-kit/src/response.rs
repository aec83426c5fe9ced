use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use spin_sdk::http::FullBody;

/// The one response type all components return; it implements the SDK's
/// `IntoResponse`, so handlers never need a `Result`.
pub type HttpResponse = http::Response<FullBody<Bytes>>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
// API answers change every few hundred milliseconds (the projector polls
// /votes twice a second): no cache may keep them.
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
// Browsers must take every answer as the type it says it is: a JSON error that
// echoes input must never be sniffed into HTML.
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
// An API answer opened in a browser tab runs nothing and loads nothing.
const API_CSP: HeaderValue = HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'");

/// A response with the given body, `content-type` and `x-content-type-options: nosniff`.
pub fn response_with_body(
    status: StatusCode,
    content_type: HeaderValue,
    body: impl Into<Bytes>,
) -> HttpResponse {
    let mut response = http::Response::new(FullBody::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    response
}

/// The headers every JSON answer carries besides its type.
fn api_headers(response: &mut HttpResponse) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, NO_STORE);
    headers.insert(header::CONTENT_SECURITY_POLICY, API_CSP);
}

/// `value` as JSON with `content-type: application/json`, `cache-control: no-store`,
/// `x-content-type-options: nosniff` and a CSP that allows nothing.
pub fn json(status: StatusCode, value: &impl Serialize) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = response_with_body(status, JSON, body);
            api_headers(&mut response);
            response
        }
        Err(e) => {
            eprintln!("guest-kit: cannot serialise response body: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
        }
    }
}

/// `{"detail": <detail>}` with the given status.
pub fn error(status: StatusCode, detail: &str) -> HttpResponse {
    let mut response = response_with_body(status, JSON, poll_core::error_body(detail));
    api_headers(&mut response);
    response
}

/// 404 `{"detail":"Not found"}`.
pub fn not_found() -> HttpResponse {
    error(StatusCode::NOT_FOUND, poll_core::NOT_FOUND_DETAIL)
}

/// 405 `{"detail":"Method not allowed"}` with the `Allow` header HTTP requires.
pub fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    // A FullBody yields its one frame at once, so no executor is needed.
    fn body_bytes(response: HttpResponse) -> Vec<u8> {
        let mut body = response.into_body();
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) {
            if let Ok(data) = frame.into_data() {
                out.extend_from_slice(&data);
            }
        }
        out
    }

    #[test]
    fn json_sets_headers_and_status() {
        let r = json(StatusCode::OK, &serde_json::json!({"status": "healthy"}));
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(
            r.headers()[header::CONTENT_SECURITY_POLICY],
            "default-src 'none'; frame-ancestors 'none'"
        );
        assert_eq!(body_bytes(r), br#"{"status":"healthy"}"#);
    }

    #[test]
    fn error_bodies() {
        let r = error(StatusCode::SERVICE_UNAVAILABLE, "Database unavailable");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        assert_eq!(body_bytes(r), br#"{"detail":"Database unavailable"}"#);

        let r = not_found();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(body_bytes(r), br#"{"detail":"Not found"}"#);

        let r = method_not_allowed("POST");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "POST");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
