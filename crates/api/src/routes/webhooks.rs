//! `/api/admin/v1/webhooks`: subscriptions to Steward's events, their deliveries, redelivery and
//! a test ping; `/api/admin/v1/event-types`: the catalog. Holders of `webhooks:manage`
//! (super_admin) manage every subscription, holders of `webhooks:read` (super_admin, auditor)
//! read them; owners and admins of an organization manage that organization's. A token needs
//! the scope `webhooks:read` for reads and `webhooks:manage` for changes.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::webhooks::{NewWebhook, WebhookChanges, WebhookService};
use steward_domain::events::catalog::EVENT_TYPES;
use steward_domain::events::webhooks::{DeliveryRecord, DeliveryStatus, WebhookRecord};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Caller, scopes};
use crate::envelope::{self, Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, OptionalJson, Origin, PageQuery};
use crate::state::AppState;

/// A webhook subscription (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub id: Uuid,
    /// Only this organization's events; `null`: every event of the instance.
    pub organization_id: Option<Uuid>,
    pub url: String,
    pub description: Option<String>,
    /// Event types (`user.created`), resource wildcards (`auth.*`) or `*`.
    pub events: Vec<String>,
    pub enabled: bool,
    /// Deliveries that ended `failed` since the last success (at 50 Steward turns the
    /// subscription off).
    pub consecutive_failures: i32,
    /// Why Steward turned it off, if it did.
    pub disabled_reason: Option<String>,
    /// After a rotation: until when the previous secret also signs.
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Send it back as `version` or `If-Match` when changing the subscription.
    pub version: i32,
}

impl From<WebhookRecord> for WebhookView {
    fn from(webhook: WebhookRecord) -> Self {
        let now = Utc::now();
        Self {
            id: webhook.id,
            organization_id: webhook.organization_id,
            url: webhook.url,
            description: webhook.description,
            events: webhook.events.as_slice().to_vec(),
            enabled: webhook.enabled,
            consecutive_failures: webhook.consecutive_failures,
            disabled_reason: webhook.disabled_reason,
            previous_secret_valid_until: webhook.previous_secret_until.filter(|until| *until > now),
            created_by: webhook.created_by,
            created_at: webhook.created_at,
            updated_at: webhook.updated_at,
            version: webhook.version,
        }
    }
}

/// A subscription with its signing secret, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_…`: the HMAC key of `X-Steward-Signature`. Shown once; rotate it to get a new one.
    pub secret: String,
}

fn with_secret(status: actix_web::http::StatusCode, webhook: WebhookRecord, secret: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(Envelope {
            success: true,
            data: WebhookWithSecret {
                webhook: WebhookView::from(webhook),
                secret,
            },
        })
}

/// One event on its way to one subscription.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// Sent as `X-Steward-Delivery`; receivers de-duplicate by it.
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The event's `id` (the audit entry's).
    pub event_id: Uuid,
    pub event_type: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// When the next attempt is due, while `pending`.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last answer.
    pub response_status: Option<i32>,
    /// The start of the last answer's body (at most 1 KiB).
    pub response_body: Option<String>,
    /// How long the last attempt took.
    pub latency_ms: Option<i64>,
    pub last_error: Option<String>,
    /// The delivery this one sends again.
    pub redelivery_of: Option<Uuid>,
    /// The exact JSON body posted (and signed).
    #[schema(value_type = Object)]
    pub request_body: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(delivery: DeliveryRecord) -> Self {
        Self {
            request_body: serde_json::from_str(&delivery.payload).unwrap_or(serde_json::Value::Null),
            id: delivery.id,
            webhook_id: delivery.webhook_id,
            event_id: delivery.event_id,
            event_type: delivery.event_type,
            status: delivery.status.as_str().to_owned(),
            attempts: delivery.attempts,
            next_attempt_at: delivery.next_attempt_at,
            response_status: delivery.response_status,
            response_body: delivery.response_excerpt,
            latency_ms: delivery.latency_ms,
            last_error: delivery.last_error,
            redelivery_of: delivery.redelivery_of,
            created_at: delivery.created_at,
            finished_at: delivery.finished_at,
        }
    }
}

/// An event type subscribers can ask for.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeView {
    /// `user.created`, `auth.account_locked`, …
    pub name: String,
    /// The `data.resourceType` of its events.
    pub resource_type: String,
    pub description: String,
}

/// Every event type, as `docs/events.md` lists them. Any signed-in caller (a token: with the
/// scope `webhooks:read`) may read it.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<Vec<EventTypeView>>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "A token without `webhooks:read`", body = ErrorEnvelope),
    )
)]
#[get("/event-types")]
pub async fn list_event_types(_caller: Caller<scopes::WebhooksRead>) -> HttpResponse {
    envelope::ok(
        EVENT_TYPES
            .iter()
            .map(|event| EventTypeView {
                name: event.name.to_owned(),
                resource_type: event.resource.to_owned(),
                description: event.summary.to_owned(),
            })
            .collect::<Vec<_>>(),
    )
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// `https://…` (`http://` only with `STEWARD_WEBHOOK_ALLOW_HTTP=true`); at most 2048
    /// characters; no credentials; loopback, private and link-local addresses only inside
    /// `STEWARD_WEBHOOK_ALLOWED_NETWORKS`.
    pub url: String,
    /// 1 to 200 of: an event type, `resource.*`, or `*`.
    pub events: Vec<String>,
    /// Only this organization's events (owners and admins of it may create these).
    pub organization_id: Option<Uuid>,
    /// At most 500 characters.
    pub description: Option<String>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

/// Subscribe to events. The answer carries the signing secret, once.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, body = Envelope<WebhookWithSecret>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "No `webhooks:manage`, or a member of the organization who is not an owner or admin", body = ErrorEnvelope),
        (status = 404, description = "No such organization (or not yours)", body = ErrorEnvelope),
        (status = 409, description = "50 subscriptions already", body = ErrorEnvelope),
    )
)]
#[post("/webhooks")]
pub async fn create_webhook(
    state: web::Data<AppState>,
    caller: Caller<scopes::WebhooksManage>,
    origin: Origin,
    body: Json<CreateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (webhook, secret) = WebhookService::new(&state)
        .create(
            &caller.principal,
            NewWebhook {
                url: body.url,
                events: body.events,
                organization_id: body.organization_id,
                description: body.description,
                enabled: body.enabled,
            },
            &origin.0,
        )
        .await?;
    Ok(with_secret(actix_web::http::StatusCode::CREATED, webhook, secret))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct WebhookListQuery {
    /// Only this organization's subscriptions.
    pub organization_id: Option<Uuid>,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

/// The subscriptions you manage, newest first.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(WebhookListQuery),
    responses(
        (status = 200, body = ListEnvelope<WebhookView>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    )
)]
#[get("/webhooks")]
pub async fn list_webhooks(
    state: web::Data<AppState>,
    caller: Caller<scopes::WebhooksRead>,
    query: web::Query<WebhookListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageQuery {
        page: query.page,
        per_page: query.per_page,
    }
    .into_request()?;
    let (webhooks, total) = WebhookService::new(&state)
        .list(&caller.principal, query.organization_id, page)
        .await?;
    Ok(envelope::page(
        webhooks.into_iter().map(WebhookView::from).collect(),
        page,
        total,
    ))
}

/// One subscription; those you do not manage are 404.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("webhookId" = Uuid, Path)),
    responses(
        (status = 200, body = Envelope<WebhookView>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[get("/webhooks/{webhookId}")]
pub async fn get_webhook(
    state: web::Data<AppState>,
    caller: Caller<scopes::WebhooksRead>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let webhook = WebhookService::new(&state)
        .get(&caller.principal, path.into_inner())
        .await?;
    Ok(envelope::ok(WebhookView::from(webhook)))
}

/// A change of a subscription; absent fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// Text, or `null` to clear it.
    #[serde(default, deserialize_with = "super::auth::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// `true` turns it back on (and clears the failure count); `false` turns it off (its
    /// pending deliveries end `failed`).
    pub enabled: Option<bool>,
    /// The version you read; alternatively send `If-Match`.
    pub version: Option<i32>,
}

/// Change a subscription (`If-Match` / `version`: stale is `409 VERSION_CONFLICT`).
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("webhookId" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version you read")),
    request_body = UpdateWebhookRequest,
    responses(
        (status = 200, body = Envelope<WebhookView>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "A stale version", body = ErrorEnvelope),
    )
)]
#[patch("/webhooks/{webhookId}")]
pub async fn update_webhook(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller<scopes::WebhooksManage>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<UpdateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let expected = super::auth::if_match_version(&request)?.or(body.version);
    let webhook = WebhookService::new(&state)
        .update(
            &caller.principal,
            path.into_inner(),
            WebhookChanges {
                url: body.url,
                events: body.events,
                description: body.description,
                enabled: body.enabled,
            },
            expected,
            &origin.0,
        )
        .await?;
    Ok(envelope::ok(WebhookView::from(webhook)))
}

/// How long the old secret keeps signing.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// 0 to 604800 (7 days); default 86400 (24 hours). During the overlap every delivery
    /// carries two signatures.
    pub overlap_seconds: Option<i64>,
}

/// A new signing secret, in this answer only.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("webhookId" = Uuid, Path)),
    request_body(content = Option<RotateSecretRequest>),
    responses(
        (status = 200, body = Envelope<WebhookWithSecret>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[post("/webhooks/{webhookId}/rotate-secret")]
pub async fn rotate_webhook_secret(
    state: web::Data<AppState>,
    caller: Caller<scopes::WebhooksManage>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: OptionalJson<RotateSecretRequest>,
) -> Result<HttpResponse, ApiError> {
    let overlap = match body.into_inner().overlap_seconds {
        None => None,
        Some(seconds) if (0..=604_800).contains(&seconds) => Some(chrono::Duration::seconds(seconds)),
        Some(_) => {
            return Err(ApiError::invalid(
                "overlapSeconds",
                "must be between 0 and 604800",
            ));
        }
    };
    let (webhook, secret) = WebhookService::new(&state)
        .rotate_secret(&caller.principal, path.into_inner(), overlap, &origin.0)
        .await?;
    Ok(with_secret(actix_web::http::StatusCode::OK, webhook, secret))
}

/// Delete a subscription and its delivery log.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("webhookId" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[delete("/webhooks/{webhookId}")]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    caller: Caller<scopes::WebhooksManage>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    WebhookService::new(&state)
        .delete(&caller.principal, path.into_inner(), &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct DeliveryListQuery {
    /// `pending`, `succeeded` or `failed`.
    pub status: Option<String>,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

/// A subscription's deliveries, newest first, with their attempts, answers and bodies.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("webhookId" = Uuid, Path), DeliveryListQuery),
    responses(
        (status = 200, body = ListEnvelope<DeliveryView>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[get("/webhooks/{webhookId}/deliveries")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    caller: Caller<scopes::WebhooksRead>,
    path: web::Path<Uuid>,
    query: web::Query<DeliveryListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageQuery {
        page: query.page,
        per_page: query.per_page,
    }
    .into_request()?;
    let status = query
        .status
        .as_deref()
        .map(|status| {
            DeliveryStatus::parse(status)
                .ok_or_else(|| ApiError::invalid("status", "must be pending, succeeded or failed"))
        })
        .transpose()?;
    let (deliveries, total) = WebhookService::new(&state)
        .deliveries(&caller.principal, path.into_inner(), status, page)
        .await?;
    Ok(envelope::page(
        deliveries.into_iter().map(DeliveryView::from).collect(),
        page,
        total,
    ))
}

/// Send a `ping` event to the subscription now (`202`: the queued delivery; follow it in the
/// delivery log).
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("webhookId" = Uuid, Path)),
    responses(
        (status = 202, body = Envelope<DeliveryView>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The subscription is turned off", body = ErrorEnvelope),
    )
)]
#[post("/webhooks/{webhookId}/test")]
pub async fn test_webhook(
    state: web::Data<AppState>,
    caller: Caller<scopes::WebhooksManage>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let delivery = WebhookService::new(&state)
        .ping(&caller.principal, path.into_inner())
        .await?;
    Ok(envelope::accepted(DeliveryView::from(delivery)))
}

/// One delivery.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("deliveryId" = Uuid, Path)),
    responses(
        (status = 200, body = Envelope<DeliveryView>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[get("/deliveries/{deliveryId}")]
pub async fn get_delivery(
    state: web::Data<AppState>,
    caller: Caller<scopes::WebhooksRead>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let delivery = WebhookService::new(&state)
        .delivery(&caller.principal, path.into_inner())
        .await?;
    Ok(envelope::ok(DeliveryView::from(delivery)))
}

/// Send a delivery again, whatever its status, as a new delivery (a new `X-Steward-Delivery`,
/// the same event `id`): `202` with it.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    params(("deliveryId" = Uuid, Path)),
    responses(
        (status = 202, body = Envelope<DeliveryView>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The subscription is turned off", body = ErrorEnvelope),
    )
)]
#[post("/deliveries/{deliveryId}/redeliver")]
pub async fn redeliver(
    state: web::Data<AppState>,
    caller: Caller<scopes::WebhooksManage>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let delivery = WebhookService::new(&state)
        .redeliver(&caller.principal, path.into_inner(), &origin.0)
        .await?;
    Ok(envelope::accepted(DeliveryView::from(delivery)))
}
