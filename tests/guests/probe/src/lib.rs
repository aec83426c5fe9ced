//! A probe for the runtime's fidelity tests. Each request names an action in its last path
//! segment; the answer is `<instance id> <requests this instance served> <connections it holds>`
//! so a test can tell which instance served it and what that instance keeps in its statics.
//!
//! - `hold`: open a PostgreSQL connection (waiting as long as the host makes it) and keep it in a
//!   static, so it lives exactly as long as the instance;
//! - `release`: drop one held connection; `open-drop`: open one and drop it at once;
//! - `sleep?ms=N`: answer after N ms; `id`: just answer;
//! - `session`: open a connection, report which backend it got and what the session carries over
//!   from whoever used it before (`backend=<pid> app=<application_name> locks=<advisory locks
//!   held> temp=<temp table?>`),
//!   then leave all three dirty for the next guest and drop the connection.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use spin_sdk::http::{FullBody, Request};
use spin_sdk::{http_service, pg};

thread_local! {
    static HELD: RefCell<Vec<pg::Connection>> = const { RefCell::new(Vec::new()) };
}
static SERVED: AtomicU64 = AtomicU64::new(0);

fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        format!("{seed:016x}")
    })
}

fn answer(status: u16, text: String) -> http::Response<FullBody<Bytes>> {
    let mut r = http::Response::new(FullBody::new(Bytes::from(text)));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    r
}

fn state() -> String {
    format!(
        "{} {} {}",
        instance_id(),
        SERVED.load(Ordering::Relaxed),
        HELD.with_borrow(Vec::len)
    )
}

#[http_service]
async fn handle(request: Request) -> http::Response<FullBody<Bytes>> {
    SERVED.fetch_add(1, Ordering::Relaxed);
    let action = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    match action.as_str() {
        "hold" | "open-drop" => {
            let url = match spin_sdk::variables::get("db_url").await {
                Ok(u) => u,
                Err(e) => return answer(500, format!("db_url: {e}")),
            };
            match pg::Connection::open(url).await {
                Ok(conn) if action == "hold" => HELD.with_borrow_mut(|h| h.push(conn)),
                Ok(conn) => drop(conn),
                Err(e) => return answer(503, format!("open failed: {e}")),
            }
            answer(200, state())
        }
        "release" => {
            HELD.with_borrow_mut(|h| h.pop());
            answer(200, state())
        }
        "sleep" => {
            let ms = query
                .strip_prefix("ms=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(100);
            spin_sdk::time::sleep(Duration::from_millis(ms)).await;
            answer(200, state())
        }
        "id" => answer(200, state()),
        "session" => match session().await {
            Ok(seen) => answer(200, seen),
            Err(e) => answer(500, e),
        },
        other => answer(404, format!("no action {other:?}")),
    }
}

/// What a backend handed to this guest still carries, then dirties it on purpose.
async fn session() -> Result<String, String> {
    let url = spin_sdk::variables::get("db_url")
        .await
        .map_err(|e| format!("db_url: {e}"))?;
    let conn = pg::Connection::open(url)
        .await
        .map_err(|e| format!("open: {e}"))?;
    let rows = conn
        .query(
            "SELECT pg_backend_pid(), current_setting('application_name'), \
             (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), \
             to_regclass('pg_temp.probe_dirt') IS NOT NULL",
            Vec::new(),
        )
        .await
        .map_err(|e| format!("query: {e}"))?
        .collect()
        .await
        .map_err(|e| format!("rows: {e}"))?;
    let Some(row) = rows.first() else {
        return Err("no row".into());
    };
    let seen = match (&row[0], &row[1], &row[2], &row[3]) {
        (
            pg::DbValue::Int32(pid),
            pg::DbValue::Str(app),
            pg::DbValue::Int64(locks),
            pg::DbValue::Boolean(temp),
        ) => format!("backend={pid} app={app} locks={locks} temp={temp}"),
        other => return Err(format!("unexpected row {other:?}")),
    };
    for dirt in [
        "SET application_name = 'probe-dirty'",
        "SELECT pg_advisory_lock(4242)",
        "CREATE TEMP TABLE IF NOT EXISTS probe_dirt (x int)",
    ] {
        conn.execute(dirt, Vec::new())
            .await
            .map_err(|e| format!("{dirt}: {e}"))?;
    }
    Ok(seen)
}
