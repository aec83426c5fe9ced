//! Host-side bindings for Spin's WIT interfaces, generated at build time from the WIT inside the
//! `spin-sdk` crate (see `build.rs`).

#![allow(clippy::all)]
#![allow(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/spin_bindings.rs"));

pub use spin::postgres::postgres as pg;
pub use spin::redis::redis;
pub use spin::variables::variables;
