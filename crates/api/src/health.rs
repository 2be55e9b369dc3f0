//! Liveness, readiness and metrics endpoints for load balancers and monitoring.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope, FieldError};
use crate::state::AppState;

/// How long readiness waits for the database before calling it unreachable.
const READINESS_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Liveness {
    /// Always `ok` while the process serves requests.
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// `ready`.
    pub status: String,
    /// `ok` when the database answered.
    pub database: String,
    /// Migrations applied to the database.
    pub applied_migrations: usize,
}

/// What `GET /` answers: where to go next.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub name: String,
    pub version: String,
    /// The Swagger UI.
    pub docs: String,
    /// The OpenAPI document.
    pub openapi: String,
    pub health: String,
    pub readiness: String,
}

/// A small index of the service: its name, version, and where the API reference, the OpenAPI
/// document and the health checks are.
#[utoipa::path(tag = "health", responses((status = 200, description = "The index", body = Envelope<Index>)))]
#[get("/")]
pub async fn index() -> HttpResponse {
    envelope::ok(Index {
        name: "Steward".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        docs: "/docs/".to_owned(),
        openapi: "/api-docs/openapi.json".to_owned(),
        health: "/health".to_owned(),
        readiness: "/health/ready".to_owned(),
    })
}

/// Liveness: the process is up and serving. Does not touch the database.
#[utoipa::path(tag = "health", responses((status = 200, description = "Alive", body = Envelope<Liveness>)))]
#[get("/health")]
pub async fn liveness() -> HttpResponse {
    envelope::ok(Liveness {
        status: "ok".to_owned(),
    })
}

/// Readiness: the database answers and every migration this binary carries is applied.
/// Load balancers should stop sending traffic while this answers 503.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Ready for traffic", body = Envelope<Readiness>),
        (status = 503, description = "Database unreachable or migrations pending", body = ErrorEnvelope),
    )
)]
#[get("/health/ready")]
pub async fn readiness(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let check = tokio::time::timeout(READINESS_TIMEOUT, async {
        state.store.ping().await?;
        state.store.migration_state().await
    })
    .await;
    let unavailable = |field: &str, message: String| {
        ApiError::new(ErrorCode::ServiceUnavailable, "not ready")
            .with_details(vec![FieldError {
                field: field.to_owned(),
                message,
            }])
            .with_retry_after(5)
    };
    match check {
        Err(_) => Err(unavailable("database", "no answer within 3 s".to_owned())),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: database unreachable");
            Err(unavailable("database", "unreachable".to_owned()))
        }
        Ok(Ok(state)) if !state.pending.is_empty() => Err(unavailable(
            "migrations",
            format!("{} pending: {}", state.pending.len(), state.pending.join(", ")),
        )),
        Ok(Ok(state)) => Ok(envelope::ok(Readiness {
            status: "ready".to_owned(),
            database: "ok".to_owned(),
            applied_migrations: state.applied.len(),
        })),
    }
}

/// Prometheus metrics in the text exposition format. With `STEWARD_METRICS_BIND` set they are
/// served on that management address instead, and this path answers 404.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 404, description = "Served on the management address (`STEWARD_METRICS_BIND`)", body = ErrorEnvelope),
    )
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.metrics_on_api_port {
        return Err(ApiError::not_found("no such route"));
    }
    Ok(render_metrics(&state))
}

/// The scrape: pool and process figures read now, then every family.
pub(crate) fn render_metrics(state: &AppState) -> HttpResponse {
    crate::metrics::record_pool(state.store.pool_stats());
    crate::metrics::record_event_subscribers(state.device_events.subscribers());
    crate::metrics::record_process();
    state.metrics.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
