//! Host side of `spin:redis/redis@3.0.0`. Connections are multiplexed and shared per address by
//! the host (a guest "open" is cheap), and reconnect by themselves after a Redis restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use redis::aio::ConnectionManager;
use redis::{FromRedisValue, Value};
use wasmtime::component::{Accessor, HasData, Resource};

use super::bindings::redis::{self as r, Connection, Error, Payload, RedisParameter, RedisResult};
use crate::allowed_hosts::AllowedHosts;

/// Shared Redis connections, one per address, for every instance of the app.
#[derive(Default)]
pub struct RedisClients {
    clients: tokio::sync::Mutex<HashMap<String, ConnectionManager>>,
}

impl RedisClients {
    async fn connect(&self, address: &str) -> Result<ConnectionManager, Error> {
        if let Some(c) = self.clients.lock().await.get(address) {
            return Ok(c.clone());
        }
        // Connect without holding the map: while Redis is down, every open waits for its own
        // connect timeout instead of queueing behind everyone else's.
        let client = redis::Client::open(address).map_err(|_| Error::InvalidAddress)?;
        // The retry delays start at one second and grow by `factor` (backon's exponential
        // builder; the default factor of 100 meant a refused connection took two minutes to
        // fail). Capped short: a guest that cannot reach Redis must hear so while its client
        // still waits, and the next open tries again anyway.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(std::time::Duration::from_secs(2))
            .set_response_timeout(std::time::Duration::from_secs(5))
            .set_number_of_retries(2)
            .set_factor(2)
            .set_max_delay(100);
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| Error::Other(format!("cannot connect to Redis: {e}")))?;
        let mut clients = self.clients.lock().await;
        // Another open may have connected meanwhile; keep one manager per address.
        Ok(clients.entry(address.to_owned()).or_insert(manager).clone())
    }
}

pub struct RedisState {
    component: Arc<str>,
    allowed: Arc<AllowedHosts>,
    clients: Arc<RedisClients>,
    connections: Mutex<HashMap<u32, ConnectionManager>>,
    next_id: u32,
}

impl RedisState {
    pub fn new(
        component: Arc<str>,
        allowed: Arc<AllowedHosts>,
        clients: Arc<RedisClients>,
    ) -> Self {
        Self {
            component,
            allowed,
            clients,
            connections: Mutex::new(HashMap::new()),
            next_id: 1,
        }
    }

    fn ensure_allowed(&self, address: &str) -> Result<(), Error> {
        let info: redis::ConnectionInfo = address.parse().map_err(|_| Error::InvalidAddress)?;
        let (host, port) = match &info.addr {
            redis::ConnectionAddr::Tcp(h, p) => (h.clone(), *p),
            redis::ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port),
            _ => return Err(Error::InvalidAddress),
        };
        let scheme = if matches!(info.addr, redis::ConnectionAddr::TcpTls { .. }) {
            "rediss"
        } else {
            "redis"
        };
        if self.allowed.allows(scheme, &host, Some(port)) {
            Ok(())
        } else {
            tracing::warn!(component = %self.component, address = %format!("{scheme}://{host}:{port}"), "redis address not in allowed_outbound_hosts");
            Err(Error::InvalidAddress)
        }
    }

    fn conn(&self, rep: u32) -> Result<ConnectionManager, Error> {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&rep)
            .cloned()
            .ok_or_else(|| Error::Other("no connection found".into()))
    }
}

fn other(e: redis::RedisError) -> Error {
    if e.kind() == redis::ErrorKind::TypeError {
        Error::TypeError
    } else {
        Error::Other(e.to_string())
    }
}

fn to_result(value: Value) -> Result<RedisResult, Error> {
    Ok(match value {
        Value::Nil => RedisResult::Nil,
        Value::Int(i) => RedisResult::Int64(i),
        Value::BulkString(b) => RedisResult::Binary(b),
        Value::SimpleString(s) => RedisResult::Status(s),
        Value::Okay => RedisResult::Status("OK".into()),
        Value::Double(d) => RedisResult::Binary(d.to_string().into_bytes()),
        Value::Boolean(b) => RedisResult::Int64(b.into()),
        Value::VerbatimString { text, .. } => RedisResult::Binary(text.into_bytes()),
        Value::BigNumber(n) => RedisResult::Binary(n.to_string().into_bytes()),
        Value::ServerError(e) => return Err(Error::Other(format!("{e:?}"))),
        other => return Err(Error::Other(format!("unsupported Redis reply {other:?}"))),
    })
}

impl r::Host for RedisState {}

impl r::HostConnection for RedisState {
    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&conn.rep());
        Ok(())
    }
}

pub struct RedisHost;

impl HasData for RedisHost {
    type Data<'a> = &'a mut RedisState;
}

impl RedisHost {
    fn conn<T>(
        accessor: &Accessor<T, Self>,
        conn: &Resource<Connection>,
    ) -> Result<ConnectionManager, Error> {
        accessor.with(|mut a| a.get().conn(conn.rep()))
    }

    async fn query<T, V: FromRedisValue>(
        accessor: &Accessor<T, Self>,
        conn: &Resource<Connection>,
        cmd: redis::Cmd,
    ) -> Result<V, Error> {
        let mut c = Self::conn(accessor, conn)?;
        cmd.query_async(&mut c).await.map_err(other)
    }
}

impl<T> r::HostConnectionWithStore<T> for RedisHost {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, Error>> {
        let clients = match accessor.with(|mut a| {
            let s = a.get();
            s.ensure_allowed(&address).map(|()| s.clients.clone())
        }) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let manager = match clients.connect(&address).await {
            Ok(m) => m,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(accessor.with(|mut a| {
            let s = a.get();
            let id = s.next_id;
            s.next_id = s.next_id.wrapping_add(1).max(1);
            s.connections
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, manager);
            Resource::new_own(id)
        })))
    }

    async fn publish(
        accessor: &Accessor<T, Self>,
        conn: Resource<Connection>,
        channel: String,
        payload: Payload,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(payload);
        Ok(Self::query::<_, i64>(accessor, &conn, cmd)
            .await
            .map(|_| ()))
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        conn: Resource<Connection>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Payload>, Error>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        Ok(Self::query(accessor, &conn, cmd).await)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        conn: Resource<Connection>,
        key: String,
        value: Payload,
    ) -> wasmtime::Result<Result<(), Error>> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        Ok(Self::query::<_, ()>(accessor, &conn, cmd).await)
    }

    async fn incr(
        accessor: &Accessor<T, Self>,
        conn: Resource<Connection>,
        key: String,
    ) -> wasmtime::Result<Result<i64, Error>> {
        let mut cmd = redis::cmd("INCR");
        cmd.arg(key);
        Ok(Self::query(accessor, &conn, cmd).await)
    }

    async fn del(
        accessor: &Accessor<T, Self>,
        conn: Resource<Connection>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(keys);
        Ok(Self::query(accessor, &conn, cmd).await)
    }

    async fn sadd(
        accessor: &Accessor<T, Self>,
        conn: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = redis::cmd("SADD");
        cmd.arg(key).arg(values);
        Ok(Self::query(accessor, &conn, cmd).await)
    }

    async fn smembers(
        accessor: &Accessor<T, Self>,
        conn: Resource<Connection>,
        key: String,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(key);
        Ok(Self::query(accessor, &conn, cmd).await)
    }

    async fn srem(
        accessor: &Accessor<T, Self>,
        conn: Resource<Connection>,
        key: String,
        values: Vec<String>,
    ) -> wasmtime::Result<Result<u32, Error>> {
        let mut cmd = redis::cmd("SREM");
        cmd.arg(key).arg(values);
        Ok(Self::query(accessor, &conn, cmd).await)
    }

    async fn execute(
        accessor: &Accessor<T, Self>,
        conn: Resource<Connection>,
        command: String,
        arguments: Vec<RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<RedisResult>, Error>> {
        let mut cmd = redis::cmd(&command);
        for arg in arguments {
            match arg {
                RedisParameter::Int64(i) => cmd.arg(i),
                RedisParameter::Binary(b) => cmd.arg(b),
            };
        }
        let value: Value = match Self::query(accessor, &conn, cmd).await {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        // A single reply comes back as one result; an array reply as one result per element.
        Ok(match value {
            Value::Array(items) | Value::Set(items) => items.into_iter().map(to_result).collect(),
            v => to_result(v).map(|r| vec![r]),
        })
    }
}
