//! The benchmark's baseline: a small native server that does per vote exactly what the poll's
//! vote component does to the stores — validate the body with the same rules, then `BEGIN`,
//! the same `INSERT`, the same Redis count script, `COMMIT` — and nothing else (no Wasm, no
//! metrics, no rate limit). Whatever it reaches is the practical limit of this machine and
//! these stores; `bench` reports the poll as a fraction of it. Not part of the product.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use poll_core::counts::{COUNT_SCRIPT, READY_KEY, REBUILD_SCRIPT, REBUILDING_KEY};
use poll_core::{Choice, MAX_BODY_BYTES, Vote, VoteReceipt, error_body, parse_vote, vote_key};
use redis::aio::ConnectionManager;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:3100")]
    listen: SocketAddr,
    #[arg(long)]
    db_url: String,
    #[arg(long)]
    redis_url: String,
    #[arg(long, default_value = "honey-native:")]
    redis_prefix: String,
    /// PostgreSQL connections in the pool (Spin's host pool holds up to 64 per address).
    #[arg(long, default_value_t = 64)]
    pool_size: usize,
}

struct Stores {
    pg: Pool,
    redis: ConnectionManager,
    prefix: String,
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, body: Vec<u8>) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn failure(status: StatusCode, detail: &str) -> Answer {
    answer(status, error_body(detail).into_bytes())
}

async fn handle(stores: Arc<Stores>, req: Request<Incoming>) -> Result<Answer, hyper::Error> {
    Ok(match (req.method(), req.uri().path()) {
        (&Method::POST, "/vote") => vote(&stores, req).await,
        (&Method::GET, "/health") => answer(StatusCode::OK, br#"{"status":"healthy"}"#.to_vec()),
        _ => failure(StatusCode::NOT_FOUND, "Not found"),
    })
}

async fn vote(stores: &Stores, req: Request<Incoming>) -> Answer {
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return failure(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"),
    };
    let vote = match parse_vote(&body) {
        Ok(v) => v,
        Err(e) => return failure(StatusCode::BAD_REQUEST, e.detail()),
    };
    match record(stores, &vote).await {
        Ok(()) => answer(
            StatusCode::OK,
            serde_json::to_vec(&VoteReceipt::new(vote.choice)).unwrap_or_default(),
        ),
        Err(e) => {
            eprintln!("native-vote: {e:#}");
            failure(StatusCode::SERVICE_UNAVAILABLE, "Database unavailable")
        }
    }
}

/// What the vote component's `record` does: insert and count in one transaction.
async fn record(stores: &Stores, vote: &Vote) -> anyhow::Result<()> {
    let mut client = stores.pg.get().await.context("PostgreSQL connection")?;
    let tx = client.transaction().await?;
    let insert = tx
        .prepare_cached("INSERT INTO votes (choice, referral_code) VALUES ($1, $2)")
        .await?;
    tx.execute(
        &insert,
        &[
            &vote.choice.id(),
            &vote.referral.as_ref().map(|c| c.as_str()),
        ],
    )
    .await?;
    let mut redis = stores.redis.clone();
    let counted: i64 = redis::cmd("EVAL")
        .arg(COUNT_SCRIPT)
        .arg(2)
        .arg(format!("{}{READY_KEY}", stores.prefix))
        .arg(vote_key(&stores.prefix, vote.choice))
        .arg(1)
        .query_async(&mut redis)
        .await?;
    tx.commit().await?;
    if counted == -1 {
        rebuild(stores).await?;
    }
    Ok(())
}

/// The same rebuild as the app's (counts from PostgreSQL under a share lock).
async fn rebuild(stores: &Stores) -> anyhow::Result<()> {
    let mut redis = stores.redis.clone();
    let p = &stores.prefix;
    let locked: Option<String> = redis::cmd("SET")
        .arg(format!("{p}{REBUILDING_KEY}"))
        .arg(1)
        .arg("NX")
        .arg("PX")
        .arg(5000)
        .query_async(&mut redis)
        .await?;
    if locked.is_none() {
        return Ok(());
    }
    let mut client = stores.pg.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute("LOCK TABLE votes IN SHARE MODE").await?;
    let rows = tx
        .query("SELECT choice, count(*) FROM votes GROUP BY choice", &[])
        .await?;
    let count = |c: Choice| {
        rows.iter()
            .find(|r| r.get::<_, &str>(0) == c.id())
            .map_or(0, |r| r.get::<_, i64>(1))
    };
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(REBUILD_SCRIPT)
        .arg(7)
        .arg(format!("{p}{READY_KEY}"))
        .arg(format!("{p}{REBUILDING_KEY}"));
    for c in Choice::ALL {
        cmd.arg(vote_key(p, c));
    }
    for c in Choice::ALL {
        cmd.arg(count(c));
    }
    let _: i64 = cmd.query_async(&mut redis).await?;
    tx.commit().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pg_config: tokio_postgres::Config = args.db_url.parse().context("--db-url")?;
    let manager = Manager::from_config(
        pg_config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pg = Pool::builder(manager)
        .max_size(args.pool_size)
        .build()
        .context("PostgreSQL pool")?;
    let redis = redis::Client::open(args.redis_url.as_str()).context("--redis-url")?;
    let redis = ConnectionManager::new(redis)
        .await
        .context("connecting to Redis")?;
    let stores = Arc::new(Stores {
        pg,
        redis,
        prefix: args.redis_prefix,
    });
    rebuild(&stores).await.context("initial count")?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("native-vote listening on http://{}", listener.local_addr()?);
    loop {
        let (socket, _) = listener.accept().await?;
        // Streamed answers stall ~40 ms each without it (Nagle + delayed ACK).
        let _ = socket.set_nodelay(true);
        let stores = stores.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(stores.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}
