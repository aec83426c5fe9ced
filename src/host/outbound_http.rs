//! Outbound HTTP from guests: requests to `http://<component>.spin.internal/…` are dispatched to
//! that component in-process (Spin's local service chaining); anything else must be listed in the
//! component's `allowed_outbound_hosts`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::allowed_hosts::AllowedHosts;

pub const CHAINING_SUFFIX: &str = ".spin.internal";

/// Something that can serve a request with a named component (the app's dispatcher).
pub trait ChainTarget: Send + Sync {
    fn dispatch(
        &self,
        component: String,
        request: http::Request<WasiBody>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<WasiBody>, Error>> + Send>>;
}

/// Filled in once the app is built, so instances can reach their sibling components.
pub type ChainSlot = Arc<OnceLock<Weak<dyn ChainTarget>>>;

pub struct OutboundHttp {
    pub component: Arc<str>,
    pub allowed: Arc<AllowedHosts>,
    pub chain: ChainSlot,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _io: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        let host = request
            .uri()
            .host()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let scheme = request.uri().scheme_str().unwrap_or("http").to_owned();
        let port = request.uri().port_u16();

        if let Some(target) = host.strip_suffix(CHAINING_SUFFIX) {
            let target = target.to_owned();
            if !self.allowed.allows_chaining_to(&target) {
                tracing::warn!(component = %self.component, %target, "service chaining not allowed");
                return Box::new(async { Err(Error::HttpRequestDenied) });
            }
            let chain = self.chain.get().and_then(Weak::upgrade);
            return Box::new(async move {
                let chain = chain.ok_or(Error::DestinationNotFound)?;
                let response = chain.dispatch(target, request).await?;
                let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                    Box::new(async { Ok(()) });
                Ok((response, done))
            });
        }

        if !self.allowed.allows(&scheme, &host, port) {
            tracing::warn!(component = %self.component, %scheme, %host, "outbound HTTP not allowed");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(io);
            Ok((response.map(BodyExt::boxed_unsync), io))
        })
    }
}
