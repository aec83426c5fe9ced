//! Wasm-side helpers shared by honey's Spin components.
//!
//! Every component answers JSON (`{"detail": ...}` on errors) and maps a
//! failing dependency to a 503, so those rules live here once. It also builds
//! natively (the SDK's imports become stubs) so clippy checks both targets.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod body;
pub mod counts;
mod error;
mod redact;
mod response;
mod store;
pub mod telemetry;
mod vars;

pub use body::{BodyError, read_body_limited};
pub use error::GuestError;
pub use redact::redact_secrets;
pub use response::{HttpResponse, error, json, method_not_allowed, not_found, response_with_body};
pub use store::{open_postgres, open_redis, postgres_error, redis_error, within};
pub use vars::{duration_ms_variable, variable};

/// Re-exported so components need not name `http` themselves.
pub use http::{HeaderValue, Method, StatusCode, header};
