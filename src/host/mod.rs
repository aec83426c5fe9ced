//! Everything a guest instance can call: WASI 0.2/0.3, `wasi:http` (outbound, with Spin's service
//! chaining), and Spin's Postgres, Redis and variables interfaces.

pub mod bindings;
pub mod outbound_http;
pub mod pg_values;
pub mod postgres;
pub mod redis;
pub mod variables;

use wasmtime::Engine;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use outbound_http::OutboundHttp;
use postgres::{PgHost, PgState};
use redis::{RedisHost, RedisState};
use variables::{VariablesHost, VariablesState};

/// The data of one component instance's store.
pub struct HostState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub outbound_http: OutboundHttp,
    pub pg: PgState,
    pub redis: RedisState,
    pub vars: VariablesState,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.outbound_http,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// The imports every component gets, linked once per engine.
pub fn linker(engine: &Engine) -> anyhow::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    // spin-sdk 7 guests import some WASI 0.2 interfaces (io, cli) beside the 0.3 ones.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    bindings::pg::add_to_linker::<_, PgHost>(&mut linker, |s: &mut HostState| &mut s.pg)?;
    bindings::redis::add_to_linker::<_, RedisHost>(&mut linker, |s: &mut HostState| &mut s.redis)?;
    bindings::variables::add_to_linker::<_, VariablesHost>(&mut linker, |s: &mut HostState| {
        &mut s.vars
    })?;
    Ok(linker)
}
