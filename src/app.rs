//! A loaded Spin application: manifest, resolved variables, compiled components and one
//! `ProxyHandler` (instance pool) per component.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};

use anyhow::{Context, bail};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::handler::{HandlerState, Instance, ProxyHandler, ProxyPre};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx};

use crate::allowed_hosts::AllowedHosts;
use crate::host::outbound_http::{ChainSlot, ChainTarget, OutboundHttp};
use crate::host::postgres::{PgPools, PgState};
use crate::host::redis::{RedisClients, RedisState};
use crate::host::variables::VariablesState;
use crate::host::{self, HostState};
use crate::instances::{Expiration, InstanceObserver, ReuseConfig, Worker};
use crate::manifest::{FileMount, Manifest, Route};
use crate::pg_permits::PgPermits;
use crate::routes::Router;
use crate::variables::{AppVariables, ComponentVariables};

/// Resources shared by every instance of every component of the app.
pub struct Shared {
    pub pg_pools: Arc<PgPools>,
    pub pg_permits: Arc<PgPermits>,
    pub redis: Arc<RedisClients>,
    pub reuse: ReuseConfig,
    pub observer: Arc<dyn InstanceObserver>,
    pub chain: ChainSlot,
}

/// Everything needed to make a fresh instance of one component.
pub struct ComponentTemplate {
    pub id: Arc<str>,
    pre: ProxyPre<HostState>,
    engine: Engine,
    files: Vec<(PathBuf, String)>,
    allowed: Arc<AllowedHosts>,
    vars: Arc<ComponentVariables>,
    shared: Arc<Shared>,
}

impl HandlerState for ComponentTemplate {
    type StoreData = HostState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HostState, Expiration, Worker>> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stdout().inherit_stderr();
        for (host_path, guest_path) in &self.files {
            wasi.preopened_dir(host_path, guest_path, FsPerms::ReadOnly)?;
        }
        let data = HostState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            outbound_http: OutboundHttp {
                component: self.id.clone(),
                allowed: self.allowed.clone(),
                chain: self.shared.chain.clone(),
            },
            pg: PgState::new(
                self.id.clone(),
                self.allowed.clone(),
                self.shared.pg_pools.clone(),
                self.shared.pg_permits.clone(),
            ),
            redis: RedisState::new(
                self.id.clone(),
                self.allowed.clone(),
                self.shared.redis.clone(),
            ),
            vars: VariablesState {
                vars: self.vars.clone(),
            },
        };
        let mut store = Store::new(&self.engine, data);
        let proxy = self.pre.instantiate_async(&mut store).await?;
        self.shared.observer.instance_created(&self.id);
        let (expiration, request_timeout) = Expiration::new(&self.shared.reuse);
        Ok(Instance {
            store,
            proxy,
            view: |s: &mut HostState| wasmtime_wasi_http::WasiHttpView::http(s),
            expiration,
            state: Worker {
                component: self.id.clone(),
                max_reuse: self.shared.reuse.max_reuse.pick() as usize,
                max_concurrent: self.shared.reuse.max_concurrent.pick() as usize,
                request_timeout,
                observer: self.shared.observer.clone(),
            },
        })
    }
}

pub struct App {
    pub name: String,
    pub router: Router,
    pub handlers: HashMap<String, ProxyHandler<ComponentTemplate>>,
    pub metrics: Arc<crate::metrics::RuntimeMetrics>,
}

pub struct LoadOptions<'a> {
    pub manifest_path: &'a Path,
    pub pg_permits: Arc<PgPermits>,
    pub reuse: ReuseConfig,
    pub metrics: Arc<crate::metrics::RuntimeMetrics>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl App {
    pub async fn load(engine: &Engine, opts: LoadOptions<'_>) -> anyhow::Result<Arc<Self>> {
        let manifest = Manifest::load(opts.manifest_path)?;
        let base = opts
            .manifest_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        let vars = AppVariables::resolve(&manifest.variables, opts.env)?;
        let linker: Linker<HostState> = host::linker(engine)?;
        let shared = Arc::new(Shared {
            pg_pools: Arc::default(),
            pg_permits: opts.pg_permits,
            redis: Arc::default(),
            reuse: opts.reuse,
            observer: opts.metrics.clone(),
            chain: Arc::new(OnceLock::new()),
        });

        let mut handlers = HashMap::new();
        for (id, component) in &manifest.component {
            let source = base.join(&component.source);
            let wasm = crate::compile::load_component(engine, &source)
                .with_context(|| format!("loading component `{id}` from {}", source.display()))?;
            let template =
                Self::template(engine, &linker, id, component, &wasm, &base, &vars, &shared)
                    .with_context(|| format!("preparing component `{id}`"))?;
            handlers.insert(id.clone(), ProxyHandler::new(template));
        }

        let router = Router::new(manifest.trigger.http.iter().filter_map(|t| match &t.route {
            Route::Path(p) => Some((p.as_str(), t.component.as_str())),
            Route::Private(_) => None,
        }));
        let app = Arc::new(App {
            name: manifest.application.name.clone(),
            router,
            handlers,
            metrics: opts.metrics,
        });
        let weak: Weak<dyn ChainTarget> = Arc::downgrade(&(app.clone() as Arc<dyn ChainTarget>));
        let _ = shared.chain.set(weak);
        Ok(app)
    }

    #[allow(clippy::too_many_arguments)]
    fn template(
        engine: &Engine,
        linker: &Linker<HostState>,
        id: &str,
        component: &crate::manifest::Component,
        wasm: &Component,
        base: &Path,
        vars: &AppVariables,
        shared: &Arc<Shared>,
    ) -> anyhow::Result<ComponentTemplate> {
        let allowed: Vec<String> = component
            .allowed_outbound_hosts
            .iter()
            .map(|h| vars.expand(h))
            .collect::<Result<_, _>>()?;
        let allowed = AllowedHosts::parse(&allowed)?;
        let component_vars = ComponentVariables::resolve(vars, &component.variables)?;
        let files = file_mounts(base, &component.files)?;
        let pre = linker
            .instantiate_pre(wasm)
            .map_err(anyhow::Error::from)
            .context("the component imports something this runtime does not provide")?;
        let pre = wasmtime_wasi_http::p3::bindings::ServicePre::new(pre)
            .map_err(anyhow::Error::from)
            .context("the component does not export wasi:http/handler@0.3.0")?;
        Ok(ComponentTemplate {
            id: Arc::from(id),
            pre: ProxyPre::P3(pre),
            engine: engine.clone(),
            files,
            allowed: Arc::new(allowed),
            vars: Arc::new(component_vars),
            shared: shared.clone(),
        })
    }

    pub async fn handle(
        &self,
        component: &str,
        request: http::Request<WasiBody>,
    ) -> anyhow::Result<http::Response<WasiBody>> {
        let handler = self
            .handlers
            .get(component)
            .with_context(|| format!("no component named `{component}`"))?;
        handler
            .handle((), request)
            .await
            .map_err(anyhow::Error::from)
    }
}

impl ChainTarget for App {
    fn dispatch(
        &self,
        component: String,
        request: http::Request<WasiBody>,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<http::Response<WasiBody>, wasmtime_wasi_http::Error>> + Send,
        >,
    > {
        let Some(handler) = self.handlers.get(&component).cloned() else {
            return Box::pin(async { Err(wasmtime_wasi_http::Error::DestinationNotFound) });
        };
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let request = crate::server::prepare_chained(request, &component);
            let started = std::time::Instant::now();
            let result = handler.handle((), request).await;
            let status = result.as_ref().map_or(500, |r| r.status().as_u16());
            metrics.request(&component, status, started.elapsed());
            result.map_err(|e| {
                tracing::error!(target_component = %component, error = %e, "chained request failed");
                wasmtime_wasi_http::Error::InternalError(Some(e.to_string()))
            })
        })
    }
}

/// Turns `files` entries into (host directory, guest directory) preopens.
fn file_mounts(base: &Path, files: &[FileMount]) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut mounts = Vec::new();
    for f in files {
        let (source, dest) = match f {
            FileMount::Placement {
                source,
                destination,
            } => (source.as_str(), destination.clone()),
            FileMount::Pattern(p) => (p.as_str(), format!("/{}", p.trim_start_matches("./"))),
        };
        if source.contains(['*', '?', '[']) {
            bail!(
                "file pattern {source:?}: glob patterns are not supported by this runtime; mount a directory instead"
            );
        }
        let host = base.join(source);
        if !host.is_dir() {
            bail!(
                "file mount {source:?}: {} is not a directory (this runtime mounts directories)",
                host.display()
            );
        }
        if !dest.starts_with('/') {
            bail!("file mount destination {dest:?} must be absolute");
        }
        mounts.push((host, dest));
    }
    Ok(mounts)
}
