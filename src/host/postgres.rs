//! Host side of `spin:postgres/postgres@4.2.0`: guests open connections by address; each guest
//! connection is a backend checked out of a host pool shared per address (as in Spin), so an
//! "open" does not fork a new PostgreSQL backend every time.

// The interface's error type is large, and it is fixed by the WIT.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use wasmtime::component::{Accessor, FutureReader, HasData, Resource, StreamReader};

use super::bindings::pg::{
    self, Column, Connection, ConnectionBuilder, DbError, Error, ParameterValue, QueryError, Row,
    RowSet,
};
use super::pg_values;
use crate::allowed_hosts::AllowedHosts;
use crate::pg_permits::{PgPermit, PgPermits};

/// Backends per address kept by the host; Spin uses the same bound.
const POOL_SIZE_PER_ADDRESS: usize = 64;
/// Largest result a guest query may buffer in the host.
const MAX_RESULT_BYTES: usize = 128 << 20;

/// Host pools, one per connection string, shared by every instance of the app.
#[derive(Default)]
pub struct PgPools {
    pools: Mutex<HashMap<String, Pool>>,
}

impl PgPools {
    fn pool(&self, address: &str) -> Result<Pool, Error> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(address) {
            return Ok(pool.clone());
        }
        let config: tokio_postgres::Config = address
            .parse()
            .map_err(|e: tokio_postgres::Error| Error::ConnectionFailed(e.to_string()))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // The session is reset when a guest gives a backend back (`GuestConnection`'s
                // drop), not when the next one takes it: see `SESSION_RESET`.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE_PER_ADDRESS)
            .build()
            .map_err(|e| Error::Other(format!("building connection pool: {e}")))?;
        pools.insert(address.to_owned(), pool.clone());
        Ok(pool)
    }
}

/// One guest connection: a pooled backend, returned to the pool when the guest drops it.
struct GuestConnection {
    client: Option<Arc<deadpool_postgres::Object>>,
    // Dropped with the connection (or with the whole instance), which frees the slot.
    _permit: PgPermit,
}

/// What Spin's host pool runs on every backend before another guest gets it (deadpool's
/// `RecyclingMethod::Clean`), so one guest's `SET`, cursors, temp tables or advisory locks never
/// leak into another's. We run the same statements when a guest gives the backend back, in the
/// background: the next guest finds a clean session either way, but no guest waits for the reset
/// while it holds one of the app's connection slots.
const SESSION_RESET: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
    UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;";

impl Drop for GuestConnection {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            // Queued behind anything the guest still has in flight on this backend.
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = client.batch_execute(SESSION_RESET).await {
                        tracing::warn!(error = %e, "postgres session reset failed; closing the backend");
                        if let Ok(object) = Arc::try_unwrap(client) {
                            // Never handed out again.
                            let _ = deadpool_postgres::Object::take(object);
                        }
                    }
                });
            }
            Err(_) => {
                if let Ok(object) = Arc::try_unwrap(client) {
                    let _ = deadpool_postgres::Object::take(object);
                }
            }
        }
    }
}

struct GuestBuilder {
    address: String,
}

/// Per-instance Postgres state: the connections this instance's guest holds.
pub struct PgState {
    component: Arc<str>,
    allowed: Arc<AllowedHosts>,
    pools: Arc<PgPools>,
    permits: Arc<PgPermits>,
    connections: HashMap<u32, GuestConnection>,
    builders: HashMap<u32, GuestBuilder>,
    next_id: u32,
}

impl PgState {
    pub fn new(
        component: Arc<str>,
        allowed: Arc<AllowedHosts>,
        pools: Arc<PgPools>,
        permits: Arc<PgPermits>,
    ) -> Self {
        Self {
            component,
            allowed,
            pools,
            permits,
            connections: HashMap::new(),
            builders: HashMap::new(),
            next_id: 1,
        }
    }

    fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    fn client(&self, rep: u32) -> Result<Arc<deadpool_postgres::Object>, Error> {
        self.connections
            .get(&rep)
            .and_then(|c| c.client.clone())
            .ok_or_else(|| Error::ConnectionFailed("no connection found".into()))
    }

    /// Checks the address against the component's allow-list, before any network I/O.
    fn ensure_allowed(&self, address: &str) -> Result<(), Error> {
        let config: tokio_postgres::Config = address
            .parse()
            .map_err(|e: tokio_postgres::Error| Error::ConnectionFailed(e.to_string()))?;
        let ports = config.get_ports();
        for (i, host) in config.get_hosts().iter().enumerate() {
            let tokio_postgres::config::Host::Tcp(host) = host else {
                return Err(Error::ConnectionFailed(
                    "unix socket addresses are not permitted".into(),
                ));
            };
            let port = ports.get(i).or(if ports.len() == 1 {
                ports.first()
            } else {
                None
            });
            if !self.allowed.allows("postgres", host, port.copied()) {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                tracing::warn!(component = %self.component, address = %format!("postgres://{host}{port}"), "postgres address not in allowed_outbound_hosts");
                return Err(Error::ConnectionFailed(format!(
                    "address postgres://{host}{port} is not permitted"
                )));
            }
        }
        Ok(())
    }
}

/// What an open needs, taken out of the store so the wait happens without holding it.
struct OpenPlan {
    pools: Arc<PgPools>,
    permits: Arc<PgPermits>,
    component: Arc<str>,
    address: String,
}

async fn connect(plan: OpenPlan) -> Result<GuestConnection, Error> {
    // As in Spin: the slot first (waiting without limit), then a backend from the host pool.
    let permit = plan.permits.acquire(&plan.component).await;
    let pool = plan.pools.pool(&plan.address)?;
    let client = pool
        .get()
        .await
        .map_err(|e| Error::ConnectionFailed(format!("{e}")))?;
    Ok(GuestConnection {
        client: Some(Arc::new(client)),
        _permit: permit,
    })
}

fn db_error(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => {
            let mut extras = Vec::new();
            let mut push = |k: &str, v: Option<&str>| {
                if let Some(v) = v {
                    extras.push((k.to_owned(), v.to_owned()));
                }
            };
            push("hint", db.hint());
            push("schema", db.schema());
            push("table", db.table());
            push("column", db.column());
            push("constraint", db.constraint());
            Error::QueryFailed(QueryError::DbError(DbError {
                as_text: e.to_string(),
                severity: db.severity().to_owned(),
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
                detail: db.detail().map(str::to_owned),
                extras,
            }))
        }
        None => Error::QueryFailed(QueryError::Text(e.to_string())),
    }
}

fn bad_param(e: String) -> Error {
    Error::BadParameter(e)
}

async fn run_query(
    client: &deadpool_postgres::Object,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<(Vec<Column>, Result<Vec<Row>, Error>), Error> {
    let params = pg_values::to_sql_params(params).map_err(bad_param)?;
    let stmt = client.prepare_cached(statement).await.map_err(db_error)?;
    let columns = stmt
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_owned(),
            data_type: pg_values::data_type(c.type_()),
        })
        .collect();
    let refs = params
        .iter()
        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync));
    let rows = async {
        let stream = client.query_raw(&stmt, refs).await.map_err(db_error)?;
        let mut stream = std::pin::pin!(stream);
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        use futures::TryStreamExt;
        while let Some(row) = stream.try_next().await.map_err(db_error)? {
            let values = pg_values::row_values(&row).map_err(Error::ValueConversionFailed)?;
            bytes += values.iter().map(pg_values::value_size).sum::<usize>();
            if bytes > MAX_RESULT_BYTES {
                return Err(Error::QueryFailed(QueryError::Text(format!(
                    "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
                ))));
            }
            rows.push(values);
        }
        Ok(rows)
    }
    .await;
    Ok((columns, rows))
}

async fn run_execute(
    client: &deadpool_postgres::Object,
    statement: &str,
    params: Vec<ParameterValue>,
) -> Result<u64, Error> {
    let params = pg_values::to_sql_params(params).map_err(bad_param)?;
    let stmt = client.prepare_cached(statement).await.map_err(db_error)?;
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    client.execute(&stmt, &refs).await.map_err(db_error)
}

impl PgState {
    async fn open_sync(&mut self, address: String) -> Result<Resource<Connection>, Error> {
        self.ensure_allowed(&address)?;
        let conn = connect(OpenPlan {
            pools: self.pools.clone(),
            permits: self.permits.clone(),
            component: self.component.clone(),
            address,
        })
        .await?;
        let id = self.next_id();
        self.connections.insert(id, conn);
        Ok(Resource::new_own(id))
    }
}

impl pg::Host for PgState {}

impl pg::HostConnectionBuilder for PgState {
    async fn new(&mut self, address: String) -> wasmtime::Result<Resource<ConnectionBuilder>> {
        let id = self.next_id();
        self.builders.insert(id, GuestBuilder { address });
        Ok(Resource::new_own(id))
    }

    async fn set_ca_root(
        &mut self,
        _builder: Resource<ConnectionBuilder>,
        _certificate: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(Err(Error::Other(
            "TLS connections are not supported by this runtime".into(),
        )))
    }

    async fn build(
        &mut self,
        builder: Resource<ConnectionBuilder>,
    ) -> wasmtime::Result<Result<Resource<Connection>, Error>> {
        let Some(address) = self.builders.get(&builder.rep()).map(|b| b.address.clone()) else {
            return Ok(Err(Error::ConnectionFailed("no builder found".into())));
        };
        Ok(self.open_sync(address).await)
    }

    async fn drop(&mut self, builder: Resource<ConnectionBuilder>) -> wasmtime::Result<()> {
        self.builders.remove(&builder.rep());
        Ok(())
    }
}

impl pg::HostConnection for PgState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, Error>> {
        Ok(self.open_sync(address).await)
    }

    async fn query(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        let client = match self.client(conn.rep()) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        Ok(match run_query(&client, &statement, params).await {
            Ok((columns, Ok(rows))) => Ok(RowSet { columns, rows }),
            Ok((_, Err(e))) | Err(e) => Err(e),
        })
    }

    async fn execute(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let client = match self.client(conn.rep()) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        Ok(run_execute(&client, &statement, params).await)
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.connections.remove(&conn.rep());
        Ok(())
    }
}

/// Marker for the concurrent (`async func`) half of the interface, which gets the store through
/// an `Accessor` so a waiting guest call never blocks the instance's other tasks.
pub struct PgHost;

impl HasData for PgHost {
    type Data<'a> = &'a mut PgState;
}

impl PgHost {
    async fn open<T>(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> Result<Resource<Connection>, Error> {
        let plan = accessor.with(|mut access| {
            let state = access.get();
            state.ensure_allowed(&address)?;
            Ok::<_, Error>(OpenPlan {
                pools: state.pools.clone(),
                permits: state.permits.clone(),
                component: state.component.clone(),
                address,
            })
        })?;
        let conn = connect(plan).await?;
        Ok(accessor.with(|mut access| {
            let state = access.get();
            let id = state.next_id();
            state.connections.insert(id, conn);
            Resource::new_own(id)
        }))
    }

    fn client<T>(
        accessor: &Accessor<T, Self>,
        conn: &Resource<Connection>,
    ) -> Result<Arc<deadpool_postgres::Object>, Error> {
        accessor.with(|mut access| access.get().client(conn.rep()))
    }
}

impl<T> pg::HostConnectionBuilderWithStore<T> for PgHost {
    async fn build_async(
        accessor: &Accessor<T, Self>,
        builder: Resource<ConnectionBuilder>,
    ) -> wasmtime::Result<Result<Resource<Connection>, Error>> {
        let address = accessor.with(|mut access| {
            access
                .get()
                .builders
                .get(&builder.rep())
                .map(|b| b.address.clone())
        });
        Ok(match address {
            Some(address) => Self::open(accessor, address).await,
            None => Err(Error::ConnectionFailed("no builder found".into())),
        })
    }
}

impl<T> pg::HostConnectionWithStore<T> for PgHost {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, Error>> {
        Ok(Self::open(accessor, address).await)
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let client = match Self::client(accessor, &conn) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        Ok(run_execute(&client, &statement, params).await)
    }

    #[allow(clippy::type_complexity)]
    async fn query_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> wasmtime::Result<
        Result<
            (
                Vec<Column>,
                StreamReader<Row>,
                FutureReader<Result<(), Error>>,
            ),
            Error,
        >,
    > {
        let client = match Self::client(accessor, &conn) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let (columns, rows) = match run_query(&client, &statement, params).await {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        // Like Spin, a failure while rows are being produced (a statement timeout, say) is
        // reported through the result future, after whatever rows arrived.
        let (rows, outcome) = match rows {
            Ok(rows) => (rows, Ok(())),
            Err(e) => (Vec::new(), Err(e)),
        };
        let readers = accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, rows)?;
            let future =
                FutureReader::new(&mut access, async move { wasmtime::error::Ok(outcome) })?;
            wasmtime::error::Ok((stream, future))
        })?;
        Ok(Ok((columns, readers.0, readers.1)))
    }
}
