//! `GET /api/admin/v1/users` and `GET /users/export`: finding accounts by text, status, role,
//! organization and dates, and exporting what the filters select as JSON or CSV.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::admin_users::UserAdminService;
use steward_app::user_export::{ExportedUser, user_csv_rows, user_json_rows};
use steward_domain::accounts::{LISTED_STATUSES, MfaFilter, UserFilter, UserListing, UserSort};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, ListEnvelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{PageQuery, checked_time};
use crate::state::AppState;

/// Filters, order and paging of the user listing; each present filter narrows the result.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct UserListQuery {
    /// Part of the email or display name, case-insensitive (at most 200 characters).
    pub q: Option<String>,
    /// `active` or `locked`.
    pub status: Option<String>,
    /// Holds this system role.
    pub role: Option<String>,
    /// Belongs to this organization.
    pub organization_id: Option<Uuid>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
    /// Last signed in at or after.
    pub last_login_from: Option<DateTime<Utc>>,
    /// Last signed in before.
    pub last_login_to: Option<DateTime<Utc>>,
    /// `enrolled` (sign-in asks for a code), `missing` (no second factor) or `exempt` (an
    /// exemption from admin MFA enforcement is in force).
    pub mfa: Option<String>,
    /// `createdAt` (default), `email`, `displayName` or `lastLoginAt`.
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    pub order: Option<String>,
}

impl UserListQuery {
    fn into_filter(self) -> Result<UserFilter, ApiError> {
        let text = self.q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
        if text.as_deref().is_some_and(|q| q.chars().count() > 200) {
            return Err(ApiError::invalid("q", "must be at most 200 characters"));
        }
        if let Some(status) = self.status.as_deref()
            && !LISTED_STATUSES.contains(&status)
        {
            return Err(ApiError::invalid("status", "must be active or locked"));
        }
        if self
            .role
            .as_deref()
            .is_some_and(|role| role.is_empty() || role.chars().count() > 64)
        {
            return Err(ApiError::invalid("role", "must be 1 to 64 characters"));
        }
        let sort = match self.sort.as_deref() {
            None => UserSort::CreatedAt,
            Some(value) => UserSort::parse(value).ok_or_else(|| {
                ApiError::invalid("sort", "must be createdAt, email, displayName or lastLoginAt")
            })?,
        };
        let descending = match self.order.as_deref() {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(_) => return Err(ApiError::invalid("order", "must be asc or desc")),
        };
        let mfa = match self.mfa.as_deref() {
            None => None,
            Some(value) => Some(
                MfaFilter::parse(value)
                    .ok_or_else(|| ApiError::invalid("mfa", "must be enrolled, missing or exempt"))?,
            ),
        };
        let created_from = checked_time("createdFrom", self.created_from)?;
        let created_to = checked_time("createdTo", self.created_to)?;
        let last_login_from = checked_time("lastLoginFrom", self.last_login_from)?;
        let last_login_to = checked_time("lastLoginTo", self.last_login_to)?;
        for (field, from, to) in [
            ("createdTo", created_from, created_to),
            ("lastLoginTo", last_login_from, last_login_to),
        ] {
            if let (Some(from), Some(to)) = (from, to)
                && from > to
            {
                return Err(ApiError::invalid(
                    field,
                    "must not be before the matching `…From`",
                ));
            }
        }
        Ok(UserFilter {
            text,
            status: self.status,
            role: self.role,
            organization: self.organization_id,
            created_from,
            created_to,
            last_login_from,
            last_login_to,
            mfa,
            sort,
            descending,
        })
    }
}

/// An organization an account belongs to, and its role there.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserOrganizationView {
    pub organization_id: Uuid,
    /// owner, admin, viewer or member.
    pub role: String,
}

/// One account of the listing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserListItem {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    /// `active` or `locked`.
    pub status: String,
    pub email_verified: bool,
    /// System roles (`super_admin`, `support`, …).
    pub system_roles: Vec<String>,
    pub organizations: Vec<UserOrganizationView>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    /// Failed sign-ins counted against the email now (an automatic lockout follows 5).
    pub failed_login_attempts: i32,
    /// Whether sign-in asks this account for a second factor (TOTP).
    pub mfa_enrolled: bool,
}

impl From<UserListing> for UserListItem {
    fn from(listing: UserListing) -> Self {
        let user = listing.user;
        Self {
            id: user.id,
            email: user.email,
            display_name: user.display_name,
            status: user.status,
            email_verified: user.email_verified_at.is_some(),
            system_roles: listing.roles,
            organizations: listing
                .organizations
                .into_iter()
                .map(|(organization_id, role)| UserOrganizationView {
                    organization_id,
                    role,
                })
                .collect(),
            created_at: user.created_at,
            last_login_at: user.last_login_at,
            failed_login_attempts: listing.failed_attempts,
            mfa_enrolled: listing.mfa_enrolled,
        }
    }
}

/// Find accounts (`users:read`): by part of the email or name, status, system role,
/// organization, creation and last sign-in time; sorted and paged.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(UserListQuery, PageQuery),
    responses(
        (status = 200, body = ListEnvelope<UserListItem>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    )
)]
#[get("/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::UsersRead>,
    query: web::Query<UserListQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page.into_inner().into_request()?;
    let filter = query.into_inner().into_filter()?;
    let (listings, total) = UserAdminService::new(&state).list(&filter, page).await?;
    let items: Vec<UserListItem> = listings.into_iter().map(UserListItem::from).collect();
    Ok(envelope::page(items, page, total))
}

/// The export's format.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserExportFormat {
    /// `csv` or `json` (default).
    pub format: Option<String>,
}

/// Export the accounts matching the listing's filters and order (`users:read`), every page,
/// streamed: JSON (an array of the listing's rows) or CSV with a header row; cells a
/// spreadsheet would run as formulas are prefixed with `'`.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(UserListQuery, UserExportFormat),
    responses(
        (status = 200, description = "A JSON array or CSV with a header row", content_type = "application/json"),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    )
)]
#[get("/users/export")]
pub async fn export_users(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::UsersRead>,
    query: web::Query<UserListQuery>,
    format: web::Query<UserExportFormat>,
) -> Result<HttpResponse, ApiError> {
    const BATCH: u64 = 100;
    let csv = match format.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be csv or json")),
    };
    let filter = query.into_inner().into_filter()?;
    // (next page, nothing written yet), or None when done.
    let stream = futures_util::stream::unfold(Some((1_u64, true)), move |stage| {
        let (state, filter) = (state.clone(), filter.clone());
        async move {
            let (page, first) = stage?;
            let request = match steward_domain::PageRequest::parse(Some(page), Some(BATCH)) {
                Ok(request) => request,
                Err(_) => return Some((Ok(web::Bytes::from_static(if csv { b"" } else { b"]" })), None)),
            };
            let rows = match UserAdminService::new(&state).list(&filter, request).await {
                Ok((rows, _)) => rows,
                Err(error) => {
                    tracing::error!(%error, "user export failed mid-stream");
                    return Some((Err(actix_web::Error::from(ApiError::from(error))), None));
                }
            };
            let last = (rows.len() as u64) < BATCH;
            let items: Vec<ExportedUser> = rows.into_iter().map(ExportedUser::from).collect();
            let mut chunk = Vec::new();
            if csv {
                match user_csv_rows(&items, first) {
                    Ok(bytes) => chunk.extend_from_slice(&bytes),
                    Err(_) => return Some((Err(ApiError::internal().into()), None)),
                }
            } else {
                if first {
                    chunk.push(b'[');
                }
                match user_json_rows(&items, first) {
                    Ok(bytes) => chunk.extend_from_slice(&bytes),
                    Err(_) => return Some((Err(ApiError::internal().into()), None)),
                }
                if last {
                    chunk.push(b']');
                }
            }
            let next = (!last).then_some((page + 1, first && items.is_empty()));
            Some((Ok(web::Bytes::from(chunk)), next))
        }
    });
    let (content_type, name) = if csv {
        ("text/csv; charset=utf-8", "users.csv")
    } else {
        ("application/json", "users.json")
    };
    Ok(crate::envelope::attachment(content_type, name).streaming(stream))
}

/// Export the accounts matching the listing's filters as a background job (`users:read`):
/// `202` at once with `Location: /api/admin/v1/jobs/{id}`; the job's file
/// (`GET /jobs/{id}/result`) is the export, as `GET /users/export` streams it.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(UserListQuery, UserExportFormat),
    responses(
        (status = 202, description = "The export job, at `Location`", body = crate::envelope::Envelope<crate::routes::jobs::JobView>),
        (status = 400, description = "A filter or format that does not parse", body = ErrorEnvelope),
        (status = 403, description = "Without `users:read`", body = ErrorEnvelope),
        (status = 429, description = "Ten of your jobs are already waiting or running", body = ErrorEnvelope),
    )
)]
#[post("/users/export")]
pub async fn export_users_job(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersRead>,
    origin: crate::extractors::Origin,
    query: web::Query<UserListQuery>,
    format: web::Query<UserExportFormat>,
) -> Result<HttpResponse, ApiError> {
    let csv = match format.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be csv or json")),
    };
    let filter = query.into_inner().into_filter()?;
    let job = steward_app::jobs::JobService::new(&state)
        .submit_user_export(&admin.0.principal, &filter, csv, &origin.0)
        .await?;
    Ok(crate::routes::jobs::accepted(job))
}
