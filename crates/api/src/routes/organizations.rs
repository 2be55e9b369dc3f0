//! `/api/admin/v1/organizations`: tenants, their users and usage. System administrators with
//! `organizations:*` see every organization; organization users see only their own, with the
//! powers of their organization role. Everyone else gets 404 for an organization's paths.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_app::organizations::{NewOrganization, OrganizationChanges, OrganizationService, UserRef};
use steward_domain::organizations::{OrgRuleError, OrganizationRecord, parse_org_role};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Caller;
use crate::auth::scopes::OrganizationsRead;
use crate::envelope::{self, Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin, PageQuery};
use crate::org_access::{OrgAccess, actions as org_actions};
use crate::state::AppState;

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
    let new = NewOrganization {
        name: body.name,
        slug: body.slug,
        description: body.description,
        settings: body.settings,
        owner: body.owner_user_id,
    };
    let record = OrganizationService::new(&state)
        .create(admin.0.user_id, new, &origin.0)
        .await?;
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
    let (records, total) = OrganizationService::new(&state)
        .list(caller.principal, page)
        .await?;
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
    _path: web::Path<Uuid>,
    body: Json<UpdateOrganizationRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let changes = OrganizationChanges {
        name: body.name,
        slug: body.slug,
        description: body.description,
        settings: body.settings,
        expected_version: super::auth::if_match_version(&request)?.or(body.version),
    };
    let updated = OrganizationService::new(&state)
        .update(caller.standing, changes, &origin.0)
        .await?;
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
    _path: web::Path<Uuid>,
    query: web::Query<DeleteOrganizationQuery>,
) -> Result<HttpResponse, ApiError> {
    OrganizationService::new(&state)
        .delete(caller.standing, query.force.unwrap_or(false), &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What an organization uses, and its quotas.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgUsageView {
    /// Devices in the organization by status (`active`, `suspended`, …).
    pub devices_by_status: std::collections::BTreeMap<String, u64>,
    pub users: u64,
    pub policies: u64,
    /// Every enrollment token, revoked ones included (the quota counts live ones).
    pub enrollment_tokens: u64,
    /// Each quota's limit beside its use, as `GET …/quotas` shows them.
    pub quotas: Vec<crate::routes::org_quotas::QuotaLineView>,
}

/// Counts (devices by status, users, policies, enrollment tokens) and each quota beside its use.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    responses(
        (status = 200, description = "The organization's usage", body = Envelope<OrgUsageView>),
        (status = 404, description = "No such organization, or not yours", body = ErrorEnvelope)
    )
)]
#[get("/organizations/{orgId}/usage")]
pub async fn organization_usage(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::View>,
) -> Result<HttpResponse, ApiError> {
    let service = OrganizationService::new(&state);
    let usage = service.usage(caller.organization.id).await?;
    let quotas = crate::routes::org_quotas::QuotasView::from(service.quotas(&caller.organization).await?);
    Ok(envelope::ok(OrgUsageView {
        devices_by_status: usage.devices_by_status,
        users: usage.users,
        policies: usage.policies,
        enrollment_tokens: usage.enrollment_tokens,
        quotas: quotas.quotas,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgUserView {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    /// owner, admin, viewer or member.
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

/// The organization's users, oldest membership first, paged.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), PageQuery),
    responses(
        (status = 200, body = ListEnvelope<OrgUserView>),
        (status = 400, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[get("/organizations/{orgId}/users")]
pub async fn list_org_users(
    state: web::Data<AppState>,
    _caller: OrgAccess<org_actions::View>,
    path: web::Path<Uuid>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    let page = page.into_inner().into_request()?;
    let (members, total) = OrganizationService::new(&state)
        .user_page(organization, page)
        .await?;
    let views: Vec<OrgUserView> = members.into_iter().map(org_user_view).collect();
    Ok(envelope::page(views, page, total))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrgUserExportFormat {
    /// `json` (default: an array of the listing's rows) or `csv` (header
    /// `userId,email,displayName,role,joinedAt`).
    pub format: Option<String>,
}

/// The organization's users as a file (its owners and admins, and operators who read every
/// organization; a token needs `organizations:read`): `org-<orgId>-users.json` or `.csv`, as an
/// attachment.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), OrgUserExportFormat),
    responses(
        (status = 200, description = "A JSON array or CSV with a header row, as an attachment", content(
            (Vec<OrgUserView> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A format other than `json` or `csv`, or another parameter", body = ErrorEnvelope),
        (status = 403, description = "A member who is not an owner or admin", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[get("/organizations/{orgId}/users/export")]
pub async fn export_org_users(
    state: web::Data<AppState>,
    _caller: OrgAccess<org_actions::ExportUsers>,
    path: web::Path<Uuid>,
    format: web::Query<OrgUserExportFormat>,
) -> Result<HttpResponse, ApiError> {
    let csv = match format.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be json or csv")),
    };
    let organization = path.into_inner();
    let members = OrganizationService::new(&state).users(organization).await?;
    let name = format!("org-{organization}-users.{}", if csv { "csv" } else { "json" });
    let body = if csv {
        steward_app::organizations::export::org_users_csv(&members).map_err(|_| ApiError::internal())?
    } else {
        let views: Vec<OrgUserView> = members.into_iter().map(org_user_view).collect();
        serde_json::to_vec(&views).map_err(|_| ApiError::internal())?
    };
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/json"
    };
    Ok(crate::envelope::attachment(content_type, &name).body(body))
}

fn org_user_view(member: steward_domain::organizations::OrgMember) -> OrgUserView {
    OrgUserView {
        user_id: member.user_id,
        email: member.email,
        display_name: member.display_name,
        role: member.role.as_str().to_owned(),
        joined_at: member.joined_at,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddOrgUserRequest {
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
    /// owner, admin, viewer or member.
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
    _path: web::Path<Uuid>,
    body: Json<AddOrgUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let role = parse_org_role(&body.role)?;
    let user = match (body.user_id, body.email) {
        (Some(id), None) => UserRef::Id(id),
        (None, Some(email)) => UserRef::Email(email),
        _ => {
            return Err(OrgRuleError::Invalid {
                field: "userId",
                message: "give exactly one of userId and email",
            }
            .into());
        }
    };
    let user = OrganizationService::new(&state)
        .add_user(&caller.standing, user, role, &origin.0)
        .await?;
    Ok(envelope::created(json!({"userId": user, "role": role})))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeOrgRoleRequest {
    /// owner, admin, viewer or member.
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
    let (_, user) = path.into_inner();
    let role = parse_org_role(&body.role)?;
    OrganizationService::new(&state)
        .change_user_role(&caller.standing, user, role, &origin.0)
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
    let (_, user) = path.into_inner();
    OrganizationService::new(&state)
        .remove_user(&caller.standing, user, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
