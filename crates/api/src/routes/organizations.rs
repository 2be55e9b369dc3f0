//! `/api/admin/v1/organizations`: tenants, their users and usage. System administrators with
//! `organizations:*` see every organization; organization users see only their own, with the
//! powers of their organization role. Everyone else gets 404 for an organization's paths.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_domain::accounts::AccountStore;
use steward_domain::identity::EmailAddress;
use steward_domain::organizations::{
    OrgRole, OrgRuleError, OrganizationRecord, OrganizationStore, Slug, may_remove_org_user, may_set_org_role,
};
use steward_domain::{Actor, AuditAction, AuditEntry, RepositoryError};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Caller;
use crate::auth::scopes::OrganizationsRead;
use crate::envelope::{self, Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extractors::{Json, Origin, PageQuery};
use crate::org_access::{OrgAccess, actions as org_actions};
use crate::state::AppState;

fn audit(actor: Uuid, action: &'static str, organization: Uuid, origin: &Origin) -> AuditEntry {
    AuditEntry::new(Actor::admin(actor), AuditAction::known(action), "organization")
        .resource_id(organization)
        .organization(organization)
        .origin(origin.0.clone())
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationView {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub status: String,
    pub is_default: bool,
    #[schema(value_type = Option<serde_json::Value>)]
    pub settings: Option<Value>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<OrganizationRecord> for OrganizationView {
    fn from(record: OrganizationRecord) -> Self {
        Self {
            id: record.id,
            name: record.name,
            slug: record.slug,
            description: record.description,
            status: record.status,
            is_default: record.is_default,
            settings: record.settings,
            version: record.version,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

fn name(value: &str) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 200 {
        return Err(OrgRuleError::Invalid {
            field: "name",
            message: "must be 1 to 200 characters",
        }
        .into());
    }
    Ok(trimmed.to_owned())
}

fn settings(value: Option<Value>) -> Result<Option<Value>, ApiError> {
    match value {
        Some(Value::Object(map)) => Ok(Some(Value::Object(map))),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(OrgRuleError::Invalid {
            field: "settings",
            message: "must be an object",
        }
        .into()),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrganizationRequest {
    pub name: String,
    /// 3 to 63 lower-case letters, digits and single inner dashes; unique.
    pub slug: String,
    pub description: Option<String>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub settings: Option<Value>,
    /// An existing user who becomes the organization's first owner.
    pub owner_user_id: Option<Uuid>,
}

/// Create an organization (system `organizations:write`).
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    request_body = CreateOrganizationRequest,
    responses(
        (status = 201, body = Envelope<OrganizationView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 409, description = "The slug is taken", body = ErrorEnvelope),
    )
)]
#[post("/organizations")]
pub async fn create_organization(
    state: web::Data<AppState>,
    admin: crate::auth::RequirePermission<crate::auth::permissions::OrganizationsWrite>,
    origin: Origin,
    body: Json<CreateOrganizationRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let now = Utc::now();
    let record = OrganizationRecord {
        id: Uuid::now_v7(),
        name: name(&body.name)?,
        slug: Slug::parse(&body.slug)?.as_str().to_owned(),
        description: body
            .description
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty()),
        status: "active".to_owned(),
        is_default: false,
        settings: settings(body.settings)?,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    if let Some(owner) = body.owner_user_id
        && state.database.find_user(owner).await?.is_none()
    {
        return Err(OrgRuleError::Invalid {
            field: "ownerUserId",
            message: "no such user",
        }
        .into());
    }
    let entry = audit(admin.0.user_id, "organization.created", record.id, &origin).change(
        None,
        Some(json!({"name": record.name, "slug": record.slug, "owner": body.owner_user_id})),
    );
    state
        .database
        .create_organization(&record, body.owner_user_id, &entry)
        .await
        .map_err(|error| match error {
            RepositoryError::Conflict(_) => ApiError::new(ErrorCode::Conflict, "this slug is taken"),
            other => other.into(),
        })?;
    Ok(envelope::created(OrganizationView::from(record)))
}

/// Organizations: all of them for system administrators (`organizations:read`), otherwise
/// those the caller belongs to.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = ListEnvelope<OrganizationView>), (status = 401, body = ErrorEnvelope))
)]
#[get("/organizations")]
pub async fn list_organizations(
    state: web::Data<AppState>,
    caller: Caller<OrganizationsRead>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page.into_inner().into_request()?;
    let roles = state.auth.system_roles(caller.user_id).await?;
    let member = (!state.auth.roles().allows(&roles, "organizations:read")).then_some(caller.user_id);
    let (records, total) = state.database.organizations(member, page).await?;
    let views: Vec<OrganizationView> = records.into_iter().map(OrganizationView::from).collect();
    Ok(envelope::page(views, page, total))
}

/// One organization.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    responses((status = 200, body = Envelope<OrganizationView>), (status = 404, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}")]
pub async fn get_organization(
    _state: web::Data<AppState>,
    caller: OrgAccess<org_actions::View>,
    _path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let record = caller.organization;
    Ok(envelope::ok(OrganizationView::from(record)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateOrganizationRequest {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub settings: Option<Value>,
    pub version: Option<i32>,
}

/// Update an organization (its owners and admins, or `organizations:write`); honours
/// `If-Match` / `version`.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    request_body = UpdateOrganizationRequest,
    responses(
        (status = 200, body = Envelope<OrganizationView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
    )
)]
#[put("/organizations/{orgId}")]
pub async fn update_organization(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<UpdateOrganizationRequest>,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    let mut record = caller.organization;
    let body = body.into_inner();
    let expected = super::auth::if_match_version(&request)?.or(body.version);
    if let Some(value) = body.name {
        record.name = name(&value)?;
    }
    if let Some(value) = body.slug {
        record.slug = Slug::parse(&value)?.as_str().to_owned();
    }
    if let Some(value) = body.description {
        record.description = Some(value.trim().to_owned()).filter(|d| !d.is_empty());
    }
    if body.settings.is_some() {
        record.settings = settings(body.settings)?;
    }
    let entry = audit(caller.user_id, "organization.updated", organization, &origin)
        .change(None, Some(json!({"name": record.name, "slug": record.slug})));
    let updated = state
        .database
        .update_organization(&record, expected, &entry)
        .await
        .map_err(|error| match error {
            RepositoryError::Conflict(_) => ApiError::new(ErrorCode::Conflict, "this slug is taken"),
            other => other.into(),
        })?;
    Ok(envelope::ok(OrganizationView::from(updated)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteOrganizationQuery {
    /// `true`: retire every device still in the organization as part of the deletion.
    pub force: Option<bool>,
}

/// Delete an organization and everything it owns (its owners, or `organizations:write`). The
/// default organization cannot be deleted. While devices are still in it the deletion is
/// refused (409) unless `force=true`, which retires each of them in the same transaction
/// (unmanaged, device tokens revoked, open commands expired, settings version bumped, pushed).
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), DeleteOrganizationQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The default organization, or devices still in it without force", body = ErrorEnvelope),
    )
)]
#[delete("/organizations/{orgId}")]
pub async fn delete_organization(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Delete>,
    origin: Origin,
    path: web::Path<Uuid>,
    query: web::Query<DeleteOrganizationQuery>,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    let record = caller.organization;
    if record.is_default {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the default organization cannot be deleted",
        ));
    }
    let entry = audit(caller.user_id, "organization.deleted", organization, &origin);
    let retire = AuditEntry::new(
        Actor::admin(caller.user_id),
        AuditAction::known("device.retired"),
        "device",
    )
    .origin(origin.0.clone());
    let retired = state
        .database
        .delete_organization(organization, query.force.unwrap_or(false), &entry, &retire)
        .await
        .map_err(|error| match error {
            RepositoryError::Conflict(message) => ApiError::new(ErrorCode::Conflict, message),
            other => other.into(),
        })?;
    for device in retired {
        state.device_auth.forget_device(device);
        state.device_states.forget(device);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Counts: devices by status, users, policies, enrollment tokens.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    responses((status = 200, body = Envelope<Object>), (status = 404, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}/usage")]
pub async fn organization_usage(
    state: web::Data<AppState>,
    _caller: OrgAccess<org_actions::View>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    Ok(envelope::ok(state.database.org_usage(organization).await?))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgUserView {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    /// owner, admin or viewer.
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

/// The organization's users.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<OrgUserView>>), (status = 404, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}/users")]
pub async fn list_org_users(
    state: web::Data<AppState>,
    _caller: OrgAccess<org_actions::View>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    let views: Vec<OrgUserView> = state
        .database
        .org_members(organization)
        .await?
        .into_iter()
        .map(|member| OrgUserView {
            user_id: member.user_id,
            email: member.email,
            display_name: member.display_name,
            role: member.role.as_str().to_owned(),
            joined_at: member.joined_at,
        })
        .collect();
    Ok(envelope::ok(views))
}

fn parse_role(value: &str) -> Result<OrgRole, ApiError> {
    OrgRole::parse(value).ok_or_else(|| {
        OrgRuleError::Invalid {
            field: "role",
            message: "must be owner, admin or viewer",
        }
        .into()
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddOrgUserRequest {
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
    /// owner, admin or viewer.
    pub role: String,
}

/// Add a user (by id or email) with a role (owners and admins; only owners grant owner).
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    request_body = AddOrgUserRequest,
    responses(
        (status = 201, description = "Added"),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Already a user of this organization", body = ErrorEnvelope),
    )
)]
#[post("/organizations/{orgId}/users")]
pub async fn add_org_user(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::ManageUsers>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<AddOrgUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    let actor = caller.actor;
    let body = body.into_inner();
    let role = parse_role(&body.role)?;
    let user = match (body.user_id, body.email) {
        (Some(id), None) => state.database.find_user(id).await?,
        (None, Some(email)) => {
            let email = EmailAddress::parse(&email).map_err(|_| {
                ApiError::from(OrgRuleError::Invalid {
                    field: "email",
                    message: "must be an email address",
                })
            })?;
            state.database.find_user_by_email(&email).await?
        }
        _ => {
            return Err(OrgRuleError::Invalid {
                field: "userId",
                message: "give exactly one of userId and email",
            }
            .into());
        }
    }
    .filter(|user| user.is_active())
    .ok_or(OrgRuleError::Invalid {
        field: "userId",
        message: "no active account matches",
    })?;
    let entry = audit(caller.user_id, "organization.user_added", organization, &origin);
    state
        .database
        .change_org_user(
            organization,
            user.id,
            Some(role),
            move |current, owners| {
                if current.is_some() {
                    return Err(OrgRuleError::Conflict("already a user of this organization"));
                }
                may_set_org_role(actor, None, role, owners)
            },
            &entry,
        )
        .await?;
    Ok(envelope::created(json!({"userId": user.id, "role": role})))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeOrgRoleRequest {
    /// owner, admin or viewer.
    pub role: String,
}

/// Change a user's role; the last owner stays an owner (409).
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("userId" = Uuid, Path)),
    request_body = ChangeOrgRoleRequest,
    responses(
        (status = 200, description = "Changed"),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
    )
)]
#[put("/organizations/{orgId}/users/{userId}")]
pub async fn change_org_user_role(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::ManageUsers>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<ChangeOrgRoleRequest>,
) -> Result<HttpResponse, ApiError> {
    let (organization, user) = path.into_inner();
    let actor = caller.actor;
    let role = parse_role(&body.role)?;
    let entry = audit(
        caller.user_id,
        "organization.user_role_changed",
        organization,
        &origin,
    );
    state
        .database
        .change_org_user(
            organization,
            user,
            Some(role),
            move |current, owners| {
                let current = current.ok_or(OrgRuleError::NotFound)?;
                may_set_org_role(actor, Some(current), role, owners)
            },
            &entry,
        )
        .await?;
    Ok(envelope::ok(json!({"userId": user, "role": role})))
}

/// Remove a user from the organization; never the last owner (409).
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("userId" = Uuid, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
    )
)]
#[delete("/organizations/{orgId}/users/{userId}")]
pub async fn remove_org_user(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::ManageUsers>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (organization, user) = path.into_inner();
    let actor = caller.actor;
    let entry = audit(caller.user_id, "organization.user_removed", organization, &origin);
    state
        .database
        .change_org_user(
            organization,
            user,
            None,
            move |current, owners| {
                let current = current.ok_or(OrgRuleError::NotFound)?;
                may_remove_org_user(actor, current, owners)
            },
            &entry,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
