//! `GET /health` (liveness, no I/O), `GET /ready` (PostgreSQL and Redis both
//! answer) and `GET /version`.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::time::Duration;

use guest_kit::telemetry::RequestMetrics;
use guest_kit::{
    GuestError, HttpResponse, Method, StatusCode, json, method_not_allowed, not_found,
};
use serde::Serialize;
use spin_sdk::http::Request;
use spin_sdk::http_service;

/// How long /ready gives each dependency. A probe that hangs tells an
/// orchestrator nothing; a bounded one answers "not ready".
const READY_WAIT: Duration = Duration::from_secs(2);

#[http_service]
async fn handle(request: Request) -> HttpResponse {
    let endpoint = match request.uri().path() {
        "/health" => "/health",
        "/ready" => "/ready",
        "/version" => "/version",
        _ => "other",
    };
    let metrics = RequestMetrics::start(request.method(), endpoint);
    let response = if request.method() != Method::GET && request.method() != Method::HEAD {
        method_not_allowed("GET, HEAD")
    } else {
        match endpoint {
            // Liveness: no I/O, so a stuck database never gets the app restarted.
            "/health" => json(StatusCode::OK, &Health { status: "healthy" }),
            "/ready" => ready().await,
            "/version" => match version().await {
                Ok(version) => json(StatusCode::OK, &version),
                Err(e) => e.into_response(),
            },
            _ => not_found(),
        }
    };
    metrics.finish(response.status());
    response
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
struct Readiness {
    status: &'static str,
    postgres: &'static str,
    redis: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl Readiness {
    fn from_checks(postgres: &Result<(), GuestError>, redis: &Result<(), GuestError>) -> Self {
        let label = |r: &Result<(), GuestError>| if r.is_ok() { "ok" } else { "error" };
        let failed: Vec<&str> = [("postgres", postgres), ("redis", redis)]
            .into_iter()
            .filter(|(_, r)| r.is_err())
            .map(|(name, _)| name)
            .collect();
        Readiness {
            status: if failed.is_empty() {
                "ready"
            } else {
                "not ready"
            },
            postgres: label(postgres),
            redis: label(redis),
            detail: (!failed.is_empty()).then(|| format!("unavailable: {}", failed.join(", "))),
        }
    }

    fn status_code(&self) -> StatusCode {
        if self.detail.is_none() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

async fn ready() -> HttpResponse {
    // Both checks run at once so a slow one does not hide the other.
    let (postgres, redis) = futures::join!(
        bounded("postgres", check_postgres()),
        bounded("redis", check_redis())
    );
    for e in [&postgres, &redis]
        .into_iter()
        .filter_map(|r| r.as_ref().err())
    {
        eprintln!("health: not ready: {e}");
    }
    let readiness = Readiness::from_checks(&postgres, &redis);
    json(readiness.status_code(), &readiness)
}

async fn bounded(
    name: &str,
    check: impl Future<Output = Result<(), GuestError>>,
) -> Result<(), GuestError> {
    guest_kit::within(READY_WAIT, check)
        .await
        .unwrap_or_else(|| {
            Err(GuestError::unavailable(
                "Not ready",
                format!("{name} did not answer within {} ms", READY_WAIT.as_millis()),
            ))
        })
}

async fn check_postgres() -> Result<(), GuestError> {
    let db_url = guest_kit::variable("db_url").await?;
    // No wait limit of its own: `bounded` limits the whole check.
    let db = guest_kit::open_postgres(&db_url, Duration::ZERO).await?;
    db.query("SELECT 1", vec![])
        .await
        .map_err(guest_kit::postgres_error)?
        .collect()
        .await
        .map_err(guest_kit::postgres_error)?;
    Ok(())
}

async fn check_redis() -> Result<(), GuestError> {
    let redis_url = guest_kit::variable("redis_url").await?;
    let redis = guest_kit::open_redis(&redis_url).await?;
    redis
        .execute("PING", [])
        .await
        .map_err(guest_kit::redis_error)?;
    Ok(())
}

#[derive(Serialize)]
struct Version {
    version: String,
    conference: Conference,
}

#[derive(Serialize)]
struct Conference {
    name: String,
    city: String,
}

async fn version() -> Result<Version, GuestError> {
    Ok(Version {
        version: guest_kit::variable("app_version").await?,
        conference: Conference {
            name: guest_kit::variable("conference_name").await?,
            city: guest_kit::variable("conference_city").await?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> Result<(), GuestError> {
        Err(GuestError::unavailable("x", "y"))
    }

    #[test]
    fn ready_when_both_answer() {
        let r = Readiness::from_checks(&Ok(()), &Ok(()));
        assert_eq!(r.status_code(), StatusCode::OK);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"status":"ready","postgres":"ok","redis":"ok"}"#
        );
    }

    #[test]
    fn names_what_failed() {
        let r = Readiness::from_checks(&down(), &Ok(()));
        assert_eq!(r.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"status":"not ready","postgres":"error","redis":"ok","detail":"unavailable: postgres"}"#
        );

        let r = Readiness::from_checks(&down(), &down());
        assert_eq!(r.redis, "error");
        assert_eq!(r.detail.as_deref(), Some("unavailable: postgres, redis"));
    }
}
