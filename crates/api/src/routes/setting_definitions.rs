//! The setting catalog: public read for apps, admin CRUD (`settings:write`), and the push
//! outbox for operators.

use actix_web::{HttpResponse, delete, get, post, put, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_app::settings::CatalogService;
use steward_domain::settings::definitions::{Constraints, MergeRule, SettingDefinition, ValueType};
use steward_domain::settings::store::PushNotification;
use utoipa::{IntoParams, ToSchema};

use crate::auth::scopes::AccountRead;
use crate::auth::{Caller, RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::state::AppState;

/// A setting the catalog knows.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingDefinitionView {
    /// Two or more lower-case dotted words, e.g. `location.sharing_enabled`.
    pub key: String,
    /// bool, int, string, enum, string_set, json or time (`HH:MM`).
    pub value_type: String,
    #[schema(value_type = serde_json::Value)]
    pub default_value: Value,
    /// `min`, `max`, `allowed`, `maxLength`, `restrictiveness` (`"lower"`, `"higher"` or
    /// `{"order": [most restrictive first…]}`).
    #[schema(value_type = serde_json::Value)]
    #[serde(default)]
    pub constraints: Value,
    pub category: String,
    pub description: Option<String>,
    #[serde(default = "yes")]
    pub is_lockable: bool,
    /// override (default), most_restrictive or union.
    #[serde(default = "override_rule")]
    pub merge_rule: String,
    #[serde(default)]
    pub sort_order: i32,
}

fn yes() -> bool {
    true
}

fn override_rule() -> String {
    "override".to_owned()
}

impl From<&SettingDefinition> for SettingDefinitionView {
    fn from(definition: &SettingDefinition) -> Self {
        Self {
            key: definition.key.clone(),
            value_type: definition.value_type.as_str().to_owned(),
            default_value: definition.default_value.clone(),
            constraints: json!(definition.constraints),
            category: definition.category.clone(),
            description: definition.description.clone(),
            is_lockable: definition.is_lockable,
            merge_rule: definition.merge_rule.as_str().to_owned(),
            sort_order: definition.sort_order,
        }
    }
}

impl SettingDefinitionView {
    fn into_definition(self) -> Result<SettingDefinition, ApiError> {
        let value_type = ValueType::parse(&self.value_type).ok_or_else(|| {
            ApiError::invalid(
                "valueType",
                "must be bool, int, string, enum, string_set, json or time",
            )
        })?;
        let merge_rule = MergeRule::parse(&self.merge_rule)
            .ok_or_else(|| ApiError::invalid("mergeRule", "must be override, most_restrictive or union"))?;
        let constraints = if self.constraints.is_null() {
            Constraints::default()
        } else {
            serde_json::from_value(self.constraints)
                .map_err(|error| ApiError::invalid("constraints", error.to_string()))?
        };
        let definition = SettingDefinition {
            key: self.key,
            value_type,
            default_value: self.default_value,
            constraints,
            category: self.category.trim().to_owned(),
            description: self.description,
            is_lockable: self.is_lockable,
            merge_rule,
            sort_order: self.sort_order,
        };
        definition
            .check()
            .map_err(|(field, error)| ApiError::invalid(field, error.0))?;
        if definition.category.is_empty() {
            return Err(ApiError::invalid("category", "must not be empty"));
        }
        Ok(definition)
    }
}

/// The catalog of settings devices have, in display order.
#[utoipa::path(
    tag = "settings",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<SettingDefinitionView>>), (status = 401, body = ErrorEnvelope))
)]
#[get("")]
pub async fn list_definitions(
    state: web::Data<AppState>,
    _caller: Caller<AccountRead>,
) -> Result<HttpResponse, ApiError> {
    let catalog = CatalogService::new(&state).catalog().await?;
    let views: Vec<SettingDefinitionView> = catalog
        .definitions
        .iter()
        .map(SettingDefinitionView::from)
        .collect();
    Ok(envelope::ok(views))
}

/// Add a setting to the catalog (`settings:write`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = SettingDefinitionView,
    responses(
        (status = 201, body = Envelope<SettingDefinitionView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 409, description = "The key exists", body = ErrorEnvelope),
    )
)]
#[post("/setting-definitions")]
pub async fn create_definition(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::SettingsWrite>,
    origin: Origin,
    body: Json<SettingDefinitionView>,
) -> Result<HttpResponse, ApiError> {
    let definition = body.into_inner().into_definition()?;
    let view = SettingDefinitionView::from(&definition);
    CatalogService::new(&state)
        .create(admin.0.user_id, &definition, json!(view), &origin.0)
        .await?;
    Ok(envelope::created(view))
}

/// Replace a definition (`settings:write`); the key in the path wins.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("key" = String, Path)),
    request_body = SettingDefinitionView,
    responses(
        (status = 200, body = Envelope<SettingDefinitionView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[put("/setting-definitions/{key}")]
pub async fn update_definition(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::SettingsWrite>,
    origin: Origin,
    path: web::Path<String>,
    body: Json<SettingDefinitionView>,
) -> Result<HttpResponse, ApiError> {
    let mut view = body.into_inner();
    view.key = path.into_inner();
    let definition = view.into_definition()?;
    let view = SettingDefinitionView::from(&definition);
    CatalogService::new(&state)
        .update(admin.0.user_id, &definition, json!(view), &origin.0)
        .await?;
    Ok(envelope::ok(view))
}

/// Remove a definition and every device's value for it (`settings:write`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("key" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope))
)]
#[delete("/setting-definitions/{key}")]
pub async fn delete_definition(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::SettingsWrite>,
    origin: Origin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = path.into_inner();
    CatalogService::new(&state)
        .delete(admin.0.user_id, &key, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A queued push notification.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushNotificationView {
    pub id: uuid::Uuid,
    pub device_id: uuid::Uuid,
    pub reason: String,
    /// pending, sent or failed.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<PushNotification> for PushNotificationView {
    fn from(push: PushNotification) -> Self {
        Self {
            id: push.id,
            device_id: push.device_id,
            reason: push.reason,
            status: push.status,
            attempts: push.attempts,
            next_attempt_at: push.next_attempt_at,
            last_error: push.last_error,
            created_at: push.created_at,
            sent_at: push.sent_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PushQuery {
    /// pending, sent or failed.
    pub status: Option<String>,
}

/// The newest push notifications (up to 200), to see failed deliveries (`devices:read`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(PushQuery),
    responses((status = 200, body = Envelope<Vec<PushNotificationView>>), (status = 403, body = ErrorEnvelope))
)]
#[get("/push-notifications")]
pub async fn list_push_notifications(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::DevicesRead>,
    query: web::Query<PushQuery>,
) -> Result<HttpResponse, ApiError> {
    let pushes = CatalogService::new(&state)
        .push_notifications(query.status.as_deref())
        .await?;
    let views: Vec<PushNotificationView> = pushes.into_iter().map(PushNotificationView::from).collect();
    Ok(envelope::ok(views))
}
