//! Device events: `POST /api/v1/devices/{deviceId}/events` (the device), the device's events
//! for whoever may read its settings, an organization's events for its roles, counts, live
//! streams (`text/event-stream`) and the organization's retention.

use actix_web::http::header::{CACHE_CONTROL, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_app::device_events::{DeviceEventService, StreamItem, Subscription};
use steward_app::settings::SettingsCallerKind;
use steward_domain::device_events::{
    Bucket, Cursor, DeviceEvent, EventFilter, EventScope, GroupBy, IngestReport, Severity, search_words,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::scopes::{DevicesRead, DevicesWrite};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::Json;
use crate::org_access::{OrgAccess, actions as org_actions};
use crate::settings::{SettingsCaller, SettingsService};
use crate::state::AppState;

/// Words of `q` a search uses at most.
const MAX_WORDS: usize = 16;

/// A batch of events from the device.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// 1 to 500 events, each `{type, occurredAt, severity?, summary?, data?}`; each is checked
    /// on its own and refused alone.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

/// What became of a batch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngestView {
    pub accepted: usize,
    /// Events of a batch sent again with the same `Idempotency-Key` (stored the first time).
    pub duplicate: usize,
    pub rejected: usize,
    pub problems: Vec<ItemProblemView>,
}

/// Why one event was refused.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ItemProblemView {
    /// Its position in `events`, from 0.
    pub index: usize,
    pub field: String,
    pub message: String,
}

impl From<IngestReport> for IngestView {
    fn from(report: IngestReport) -> Self {
        Self {
            accepted: report.accepted,
            duplicate: report.duplicate,
            rejected: report.rejected,
            problems: report
                .problems
                .into_iter()
                .map(|problem| ItemProblemView {
                    index: problem.index,
                    field: problem.field,
                    message: problem.message,
                })
                .collect(),
        }
    }
}

/// A stored event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceEventView {
    pub id: Uuid,
    pub device_id: Uuid,
    pub organization_id: Option<Uuid>,
    /// `device` (reported by the device) or `server` (a change Steward made, from its audit
    /// entry).
    pub source: &'static str,
    #[serde(rename = "type")]
    pub kind: String,
    /// `info`, `warning`, `error` or `critical`.
    pub severity: &'static str,
    pub summary: Option<String>,
    #[schema(value_type = Object)]
    pub data: Value,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// Its place in the query order (`cursor=` reads what follows it).
    pub cursor: String,
    /// Its arrival number: the stream's event id (`Last-Event-ID`).
    pub stream_id: String,
}

impl From<&DeviceEvent> for DeviceEventView {
    fn from(event: &DeviceEvent) -> Self {
        Self {
            id: event.id,
            device_id: event.device,
            organization_id: event.organization,
            source: event.source.as_str(),
            kind: event.kind.clone(),
            severity: event.severity.as_str(),
            summary: event.summary.clone(),
            data: serde_json::from_str(&event.data).unwrap_or(Value::Null),
            occurred_at: event.occurred_at,
            received_at: event.received_at,
            cursor: event.cursor().encode(),
            stream_id: event.seq.to_string(),
        }
    }
}

/// Where a cursor page sits.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CursorMeta {
    pub limit: u64,
    /// Send as `cursor=` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPageEnvelope {
    pub success: bool,
    pub data: Vec<DeviceEventView>,
    pub meta: CursorMeta,
}

/// Events in one bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct BucketView {
    /// The type, the day (`YYYY-MM-DD`, UTC) or the device id.
    pub key: String,
    pub count: u64,
}

impl From<Bucket> for BucketView {
    fn from(bucket: Bucket) -> Self {
        Self {
            key: bucket.key,
            count: bucket.count,
        }
    }
}

/// The filters and paging of every event read, as the routes' own query types give them.
#[derive(Debug, Default)]
struct EventQuery {
    device_id: Option<String>,
    kind: Option<String>,
    severity: Option<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<u64>,
    group_by: Option<String>,
}

/// Declares a route's query type: the filters every read takes, plus the named extras.
macro_rules! event_query {
    ($(#[$meta:meta])* $name:ident { $($(#[$field_meta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize, IntoParams)]
        #[into_params(parameter_in = Query)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            /// Types starting with this (`app.` for every app event), 1-96 characters.
            #[serde(rename = "type")]
            #[param(rename = "type")]
            pub kind: Option<String>,
            /// This severity or higher: `info`, `warning`, `error`, `critical`.
            pub severity: Option<String>,
            /// `occurredAt` at or after (RFC 3339).
            pub from: Option<String>,
            /// `occurredAt` before (RFC 3339).
            pub to: Option<String>,
            /// Words that must all appear in the type, summary or data (at most 16 distinct words
            /// of letters and digits; other characters separate words; at most 1,000 characters).
            pub q: Option<String>,
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl From<$name> for EventQuery {
            fn from(query: $name) -> Self {
                EventQuery {
                    kind: query.kind,
                    severity: query.severity,
                    from: query.from,
                    to: query.to,
                    q: query.q,
                    $($field: event_query!(@wrap $field query.$field),)*
                    ..EventQuery::default()
                }
            }
        }
    };
    (@wrap $field:ident $value:expr) => { $value };
}

event_query!(
    /// Reading a device's events.
    DeviceEventQuery {
        /// From the previous page's `meta.nextCursor`.
        cursor: Option<String>,
        /// 1 to 200 (default 50).
        #[param(minimum = 1, maximum = 200)]
        limit: Option<u64>,
    }
);

event_query!(
    /// Reading an organization's events.
    OrgEventQuery {
        /// One device's events.
        device_id: Option<String>,
        /// From the previous page's `meta.nextCursor`.
        cursor: Option<String>,
        /// 1 to 200 (default 50).
        #[param(minimum = 1, maximum = 200)]
        limit: Option<u64>,
    }
);

event_query!(
    /// Counting a device's events.
    DeviceCountQuery {
        /// `type`, `day` (UTC) or `device` (required; checked after the caller's access).
        #[param(required = true)]
        group_by: Option<String>,
    }
);

event_query!(
    /// Counting an organization's events.
    OrgCountQuery {
        /// `type`, `day` (UTC) or `device` (required; checked after the caller's access).
        #[param(required = true)]
        group_by: Option<String>,
        /// One device's events.
        device_id: Option<String>,
    }
);

event_query!(
    /// Following a device's events.
    DeviceStreamQuery {}
);

event_query!(
    /// Following an organization's events.
    OrgStreamQuery {
        /// One device's events.
        device_id: Option<String>,
    }
);

fn time(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| ApiError::invalid(field, "must be an RFC 3339 time like 2026-12-03T10:00:00Z"))
        })
        .transpose()
}

impl EventQuery {
    fn filter(&self, scope: EventScope) -> Result<EventFilter, ApiError> {
        let mut filter = EventFilter::new(scope);
        if let Some(device) = &self.device_id {
            if matches!(scope, EventScope::Device(_)) {
                return Err(ApiError::invalid("deviceId", "is the path's device here"));
            }
            filter.device = Some(
                device
                    .parse()
                    .map_err(|_| ApiError::invalid("deviceId", "must be a UUID"))?,
            );
        }
        if let Some(kind) = &self.kind {
            if kind.is_empty() || kind.len() > 96 || kind.chars().any(|c| c.is_control()) {
                return Err(ApiError::invalid(
                    "type",
                    "must be 1-96 characters without control characters",
                ));
            }
            filter.type_prefix = Some(kind.clone());
        }
        if let Some(severity) = &self.severity {
            filter.severity =
                Some(Severity::parse(severity).ok_or_else(|| {
                    ApiError::invalid("severity", "must be info, warning, error or critical")
                })?);
        }
        filter.from = time("from", self.from.as_deref())?;
        filter.to = time("to", self.to.as_deref())?;
        if let Some(q) = &self.q {
            if q.len() > 1000 || q.contains('\0') {
                return Err(ApiError::invalid("q", "at most 1000 characters, without NUL"));
            }
            let words = search_words(q, MAX_WORDS + 1);
            if words.len() > MAX_WORDS {
                return Err(ApiError::invalid("q", "at most 16 words"));
            }
            filter.words = words;
        }
        Ok(filter)
    }

    fn cursor(&self) -> Result<Option<Cursor>, ApiError> {
        self.cursor
            .as_deref()
            .map(|text| {
                Cursor::parse(text)
                    .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this API gave"))
            })
            .transpose()
    }

    fn limit(&self) -> Result<u64, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(limit) if (1..=200).contains(&limit) => Ok(limit),
            Some(_) => Err(ApiError::invalid("limit", "must be 1 to 200")),
        }
    }

    fn group_by(&self) -> Result<GroupBy, ApiError> {
        let text = self
            .group_by
            .as_deref()
            .ok_or_else(|| ApiError::invalid("groupBy", "is required: type, day or device"))?;
        GroupBy::parse(text).ok_or_else(|| ApiError::invalid("groupBy", "must be type, day or device"))
    }
}

async fn page(
    state: &AppState,
    query: &EventQuery,
    scope: EventScope,
    owner: Option<Option<Uuid>>,
) -> Result<HttpResponse, ApiError> {
    let mut filter = query.filter(scope)?;
    filter.owner = owner;
    let limit = query.limit()?;
    let page = DeviceEventService::new(state)
        .page(&filter, query.cursor()?, limit)
        .await?;
    Ok(HttpResponse::Ok().json(EventPageEnvelope {
        success: true,
        data: page.events.iter().map(DeviceEventView::from).collect(),
        meta: CursorMeta {
            limit,
            next_cursor: page.next.map(Cursor::encode),
        },
    }))
}

async fn counts(
    state: &AppState,
    query: &EventQuery,
    scope: EventScope,
    owner: Option<Option<Uuid>>,
) -> Result<HttpResponse, ApiError> {
    let mut filter = query.filter(scope)?;
    filter.owner = owner;
    let buckets = DeviceEventService::new(state)
        .counts(&filter, query.group_by()?)
        .await?;
    Ok(envelope::ok(
        buckets.into_iter().map(BucketView::from).collect::<Vec<_>>(),
    ))
}

/// The stream's `Last-Event-ID`: an arrival number.
fn last_event_id(request: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(value) = request.headers().get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok())
        .filter(|id| *id >= 0)
        .map(Some)
        .ok_or_else(|| ApiError::invalid("Last-Event-ID", "must be an event id this stream sent"))
}

fn sse_event(event: &DeviceEvent) -> Bytes {
    let data = serde_json::to_string(&DeviceEventView::from(event)).unwrap_or_default();
    Bytes::from(format!(
        "id: {}\nevent: device_event\ndata: {data}\n\n",
        event.seq
    ))
}

/// Whether the caller may still read the stream (checked at every heartbeat).
type Recheck = Box<dyn Fn() -> futures_util::future::LocalBoxFuture<'static, bool>>;

/// Renders a subscription as `text/event-stream`: `retry:` advice first, each event with its
/// arrival number as `id:`, a comment every 15 s, and a last `event: dropped` message for a
/// client that fell behind or `event: closed` when its access ended.
fn stream_response(subscription: Subscription, recheck: Recheck) -> HttpResponse {
    enum Phase {
        Start,
        Open,
        Done,
    }
    let state = (subscription, recheck, Phase::Start);
    let body = futures_util::stream::unfold(state, |(mut subscription, recheck, phase)| async move {
        let chunk = match phase {
            Phase::Done => return None,
            Phase::Start => {
                return Some((
                    Ok::<_, actix_web::Error>(Bytes::from_static(b"retry: 3000\n: connected\n\n")),
                    (subscription, recheck, Phase::Open),
                ));
            }
            Phase::Open => subscription.next().await,
        };
        match chunk {
            Some(StreamItem::Event(event)) => {
                Some((Ok(sse_event(&event)), (subscription, recheck, Phase::Open)))
            }
            Some(StreamItem::Heartbeat) => {
                if recheck().await {
                    Some((
                        Ok(Bytes::from_static(b": heartbeat\n\n")),
                        (subscription, recheck, Phase::Open),
                    ))
                } else {
                    Some((
                        Ok(Bytes::from_static(
                            b"event: closed\ndata: {\"reason\":\"access ended\"}\n\n",
                        )),
                        (subscription, recheck, Phase::Done),
                    ))
                }
            }
            Some(StreamItem::Truncated { resume_after }) => Some((
                Ok(Bytes::from(format!(
                    "event: truncated\ndata: {{\"reason\":\"more events were missed than a reconnect replays\",\"lastReplayed\":\"{resume_after}\"}}\n\n"
                ))),
                (subscription, recheck, Phase::Open),
            )),
            Some(StreamItem::Dropped) => Some((
                Ok(Bytes::from_static(
                    b"event: dropped\ndata: {\"reason\":\"the client fell too far behind\"}\n\n",
                )),
                (subscription, recheck, Phase::Done),
            )),
            None => None,
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// Reports a batch of events (the device itself: its device token, or with
/// `STEWARD_LEGACY_DEVICE_AUTH` the app's key and `X-Device-Id`). Each event is checked alone:
/// `202` names what was refused and why. With `Idempotency-Key` a batch sent again is stored
/// once (its events counted as `duplicate`); another batch under a used key is `409`.
#[utoipa::path(
    tag = "device-events",
    security(("deviceToken" = []), ("apiKey" = [], "legacyDeviceId" = [])),
    params(("deviceId" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, description = "1-128 visible ASCII characters; remembered a day")),
    request_body = EventBatch,
    responses(
        (status = 202, body = Envelope<IngestView>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope, description = "A user, not the device; or DEVICE_SUSPENDED"),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope),
        (status = 415, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    )
)]
#[post("/{deviceId}/events")]
pub async fn ingest_events(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesWrite>,
    path: web::Path<Uuid>,
    body: Json<EventBatch>,
) -> Result<HttpResponse, ApiError> {
    let device = path.into_inner();
    super::settings::access(&state, &caller, device).await?;
    if caller.kind != SettingsCallerKind::Device(device) {
        return Err(ApiError::from(steward_app::error::AppError::forbidden(
            "only the device itself reports its events",
        )));
    }
    state.rate_limits.check_device_events(device).await?;
    let key = match request.headers().get("idempotency-key") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?
                .to_owned(),
        ),
        None => None,
    };
    let report = DeviceEventService::new(&state)
        .ingest(device, key, &body.0.events, Utc::now())
        .await?;
    Ok(envelope::accepted(IngestView::from(report)))
}

/// The device's events, newest `occurredAt` first, a page at a time by cursor: for its owner,
/// group owners and admins over the owner, system administrators with `devices:read`, and the
/// device itself — whoever may read its settings (404 for anyone else).
#[utoipa::path(
    tag = "device-events",
    security(("bearer" = []), ("deviceToken" = [])),
    params(("deviceId" = Uuid, Path), DeviceEventQuery),
    responses((status = 200, body = EventPageEnvelope), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope))
)]
#[get("/{deviceId}/events")]
pub async fn device_events(
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesRead>,
    path: web::Path<Uuid>,
    query: web::Query<DeviceEventQuery>,
) -> Result<HttpResponse, ApiError> {
    let device = path.into_inner();
    let access = super::settings::access(&state, &caller, device).await?;
    let owner = DeviceEventService::new(&state).history_of(&access).await?;
    page(
        &state,
        &query.into_inner().into(),
        EventScope::Device(device),
        owner,
    )
    .await
}

/// The device's events counted per `groupBy` (`type`, `day` in UTC, or `device`), with the
/// same filters; types and devices largest first, days in order; at most 1,000 buckets.
#[utoipa::path(
    tag = "device-events",
    security(("bearer" = []), ("deviceToken" = [])),
    params(("deviceId" = Uuid, Path), DeviceCountQuery),
    responses((status = 200, body = Envelope<Vec<BucketView>>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope))
)]
#[get("/{deviceId}/events/counts")]
pub async fn device_event_counts(
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesRead>,
    path: web::Path<Uuid>,
    query: web::Query<DeviceCountQuery>,
) -> Result<HttpResponse, ApiError> {
    let device = path.into_inner();
    let access = super::settings::access(&state, &caller, device).await?;
    let owner = DeviceEventService::new(&state).history_of(&access).await?;
    counts(
        &state,
        &query.into_inner().into(),
        EventScope::Device(device),
        owner,
    )
    .await
}

/// The device's events live (`text/event-stream`), with the same filters and access as the
/// query. Each event is an `event: device_event` message whose `id:` is its arrival number;
/// reconnecting with `Last-Event-ID` replays what arrived since (up to 1,000) before going on
/// live.
#[utoipa::path(
    tag = "device-events",
    security(("bearer" = []), ("deviceToken" = [])),
    params(("deviceId" = Uuid, Path), DeviceStreamQuery, ("Last-Event-ID" = Option<String>, Header)),
    responses((status = 200, content_type = "text/event-stream", description = "Server-sent events"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope, description = "Too many open streams"))
)]
#[get("/{deviceId}/events/stream")]
pub async fn device_event_stream(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesRead>,
    path: web::Path<Uuid>,
    query: web::Query<DeviceStreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let device = path.into_inner();
    let access = super::settings::access(&state, &caller, device).await?;
    let service = DeviceEventService::new(&state);
    let mut filter = EventQuery::from(query.into_inner()).filter(EventScope::Device(device))?;
    filter.owner = service.history_of(&access).await?;
    let last = last_event_id(&request)?;
    let who = match caller.kind {
        SettingsCallerKind::User(user) => user.to_string(),
        SettingsCallerKind::Device(device) => format!("device:{device}"),
    };
    let subscription = service.subscribe(who, filter, last).await?;
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.trim().to_owned())
    };
    let token = crate::auth::extractor_support::bearer_token(&request);
    let api_key = header("x-api-key");
    let identifier = header("x-device-id");
    let ip = crate::extractors::client_ip(&request).map(|ip| ip.to_string());
    let state = state.clone();
    let recheck: Recheck = Box::new(move || {
        let (state, token, api_key, identifier, ip) = (
            state.clone(),
            token.clone(),
            api_key.clone(),
            identifier.clone(),
            ip.clone(),
        );
        Box::pin(async move {
            let Ok(kind) =
                crate::settings::caller_kind::<DevicesRead>(&state, token, api_key, identifier, ip).await
            else {
                return false;
            };
            SettingsService::new(&state)
                .access(
                    kind,
                    device,
                    <DevicesRead as crate::auth::DeviceScope>::PERMISSION,
                )
                .await
                .is_ok()
        })
    });
    Ok(stream_response(subscription, recheck))
}

/// An organization's events (its devices', reported and recorded), newest first, by cursor:
/// for its users (viewers and up) and holders of `organizations:read`.
#[utoipa::path(
    tag = "device-events",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), OrgEventQuery),
    responses((status = 200, body = EventPageEnvelope), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}/events")]
pub async fn organization_events(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::View>,
    query: web::Query<OrgEventQuery>,
) -> Result<HttpResponse, ApiError> {
    page(
        &state,
        &query.into_inner().into(),
        EventScope::Organization(caller.organization_id()),
        None,
    )
    .await
}

/// An organization's events counted per `groupBy`.
#[utoipa::path(
    tag = "device-events",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), OrgCountQuery),
    responses((status = 200, body = Envelope<Vec<BucketView>>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}/events/counts")]
pub async fn organization_event_counts(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::View>,
    query: web::Query<OrgCountQuery>,
) -> Result<HttpResponse, ApiError> {
    counts(
        &state,
        &query.into_inner().into(),
        EventScope::Organization(caller.organization_id()),
        None,
    )
    .await
}

/// An organization's events live (`text/event-stream`), as the device stream.
#[utoipa::path(
    tag = "device-events",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), OrgStreamQuery, ("Last-Event-ID" = Option<String>, Header)),
    responses((status = 200, content_type = "text/event-stream", description = "Server-sent events"), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}/events/stream")]
pub async fn organization_event_stream(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::View>,
    query: web::Query<OrgStreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let organization = caller.organization_id();
    let filter = EventQuery::from(query.into_inner()).filter(EventScope::Organization(organization))?;
    let last = last_event_id(&request)?;
    let subscription = DeviceEventService::new(&state)
        .subscribe(caller.user_id.to_string(), filter, last)
        .await?;
    let token = crate::auth::extractor_support::bearer_token(&request);
    let ip = crate::extractors::client_ip(&request).map(|ip| ip.to_string());
    let state = state.clone();
    let recheck: Recheck = Box::new(move || {
        let (state, token, ip) = (state.clone(), token.clone(), ip.clone());
        Box::pin(async move {
            let Ok(principal) = crate::auth::extractor_support::identify(&state, token, ip).await else {
                return false;
            };
            steward_app::organizations::OrganizationService::new(&state)
                .standing(
                    principal,
                    organization,
                    <org_actions::View as crate::org_access::OrgAction>::PERMISSION,
                    <org_actions::View as crate::org_access::OrgAction>::SYSTEM,
                )
                .await
                .is_ok()
        })
    });
    Ok(stream_response(subscription, recheck))
}

/// How long an organization keeps its devices' events.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionView {
    pub days: u32,
    /// Whether the organization set it (`false`: `STEWARD_EVENT_RETENTION_DAYS`).
    pub own: bool,
}

/// Sets or removes an organization's own retention.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionRequest {
    /// 1 to 3650 days; `null` follows the configuration again.
    pub days: Option<u32>,
}

/// The organization's event retention (viewers and up).
#[utoipa::path(
    tag = "device-events",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    responses((status = 200, body = Envelope<RetentionView>), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}/event-retention")]
pub async fn get_event_retention(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::View>,
) -> Result<HttpResponse, ApiError> {
    let (days, own) = DeviceEventService::new(&state)
        .retention(caller.organization_id())
        .await?;
    Ok(envelope::ok(RetentionView { days, own }))
}

/// Sets the organization's event retention (owners, admins, `organizations:write`). Events
/// older than it go with the next clean-up pass; new events older than it are refused.
#[utoipa::path(
    tag = "device-events",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    request_body = RetentionRequest,
    responses((status = 200, body = Envelope<RetentionView>), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope))
)]
#[put("/organizations/{orgId}/event-retention")]
pub async fn set_event_retention(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    body: Json<RetentionRequest>,
) -> Result<HttpResponse, ApiError> {
    let (days, own) = DeviceEventService::new(&state)
        .set_retention(caller.organization_id(), body.0.days)
        .await?;
    Ok(envelope::ok(RetentionView { days, own }))
}
