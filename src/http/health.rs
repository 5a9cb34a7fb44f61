//! `/healthz` (the process answers), `/readyz` (PostgreSQL reachable and
//! the writers accepting) and `/metrics` (Prometheus text format).

use crate::app::State;
use crate::services::Accepting;
use actix_web::{HttpResponse, web};
use serde_json::json;
use std::time::Duration;

/// How long the readiness check waits for PostgreSQL.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz(state: web::Data<State>) -> HttpResponse {
    let database = async {
        let client = state.pool.get().await.ok()?;
        client.simple_query("SELECT 1").await.ok()
    };
    let database = matches!(
        tokio::time::timeout(READY_TIMEOUT, database).await,
        Ok(Some(_))
    );
    let writers = state.writers.send(Accepting).await.unwrap_or(false);
    let body = json!({ "database": database, "writers": writers });
    if database && writers {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.encode())
}
