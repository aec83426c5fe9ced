//! The HTTP front door: accepts HTTP/1.1 connections, routes each request by the manifest's
//! triggers and hands it to that component's instance pool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wasmtime_wasi_http::WasiBody;

use crate::app::App;

fn text(status: StatusCode, body: &'static str) -> Response<WasiBody> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    r
}

fn header(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Fills in what Spin tells a guest about its request: absolute URI and the `spin-*` headers.
fn prepare(
    req: &mut Request<WasiBody>,
    matched: &crate::routes::RouteMatch<'_>,
    client: Option<SocketAddr>,
    authority: &str,
) {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let full = format!("http://{authority}{path_and_query}");
    if let Ok(uri) = full.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    let h = req.headers_mut();
    h.insert("spin-full-url", header(&full));
    h.insert("spin-path-info", header(&matched.path_info));
    h.insert("spin-matched-route", header(matched.raw_route));
    h.insert("spin-raw-component-route", header(matched.raw_route));
    h.insert("spin-component-route", header(&matched.matched));
    h.insert("spin-base-path", HeaderValue::from_static("/"));
    if let Some(c) = client {
        h.insert("spin-client-addr", header(&c.to_string()));
    }
}

/// A request chained from another component. As Spin does (trigger-http's outbound_http.rs),
/// the target sees it as matched by `/...` with the whole path as path info, on host
/// `localhost`, from client `0.0.0.0:0`.
pub fn prepare_chained(mut req: Request<WasiBody>, component: &str) -> Request<WasiBody> {
    let path = req.uri().path().to_owned();
    let m = crate::routes::RouteMatch {
        component,
        raw_route: "/...",
        matched: String::new(),
        path_info: path,
    };
    prepare(
        &mut req,
        &m,
        Some(SocketAddr::from(([0, 0, 0, 0], 0))),
        "localhost",
    );
    req
}

pub async fn handle(
    app: &App,
    req: Request<Incoming>,
    client: SocketAddr,
    listen: SocketAddr,
) -> Response<WasiBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let Some(matched) = app.router.route(&path) else {
        return text(StatusCode::NOT_FOUND, "Not Found");
    };
    let component = matched.component.to_owned();
    let authority = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| listen.to_string());
    let mut req = req.map(|b| b.map_err(wasmtime_wasi_http::Error::Hyper).boxed_unsync());
    prepare(&mut req, &matched, Some(client), &authority);
    let response = match app.handle(&component, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(%component, error = %format!("{e:#}"), "component failed to respond");
            text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    };
    app.metrics
        .request(&component, response.status().as_u16(), started.elapsed());
    tracing::debug!(
        %component, %method, %path, status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "request"
    );
    response
}

pub async fn serve(app: Arc<App>, listener: TcpListener) -> anyhow::Result<()> {
    let listen = listener.local_addr()?;
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        // Without NODELAY, small streamed responses wait ~40 ms for delayed ACKs.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&app, req, client, listen).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection closed with error");
            }
        });
    }
}
