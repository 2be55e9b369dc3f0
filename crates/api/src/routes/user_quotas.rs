//! An account's quotas (personal devices, groups, members per group, personal access tokens):
//! `GET /api/v1/auth/me/quotas` for the account itself, `GET`/`PUT
//! /api/admin/v1/users/{userId}/quotas` for operators.

use actix_web::{HttpResponse, get, put, web};
use steward_app::quotas::QuotaService;
use steward_domain::quotas::QuotaKey;
use uuid::Uuid;

use crate::auth::scopes::AccountRead;
use crate::auth::{Caller, RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::routes::org_quotas::{QuotasView, SetQuotas, parse_overrides};
use crate::state::AppState;

/// The caller's own quotas: plan, overrides, and each limit beside its use.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's quotas", body = Envelope<QuotasView>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "A token without `account:read`", body = ErrorEnvelope),
    )
)]
#[get("/me/quotas")]
pub async fn my_quotas(
    state: web::Data<AppState>,
    caller: Caller<AccountRead>,
) -> Result<HttpResponse, ApiError> {
    let report = QuotaService::new(&state).user_quotas(caller.user_id).await?;
    Ok(envelope::ok(QuotasView::from(report)))
}

/// An account's plan, overrides and each limit beside its use (`users:read`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "The account's quotas", body = Envelope<QuotasView>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Without `users:read`", body = ErrorEnvelope),
        (status = 404, description = "No such account (or erased)", body = ErrorEnvelope),
    )
)]
#[get("/users/{userId}/quotas")]
pub async fn get_user_quotas(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::UsersRead>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let report = QuotaService::new(&state).user_quotas(path.into_inner()).await?;
    Ok(envelope::ok(QuotasView::from(report)))
}

/// Set an account's plan and quota overrides (`quotas:write`: super_admin). Audited as
/// `user.quota_changed` with the values before and after. Lowering a limit below the current
/// use removes nothing; further creations are refused with `409 QUOTA_EXCEEDED`.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path, description = "The user")),
    request_body = SetQuotas,
    responses(
        (status = 200, description = "The quotas now", body = Envelope<QuotasView>),
        (status = 400, description = "An unknown plan or limit (an organization's limit included), or a value out of range", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Without `quotas:write`", body = ErrorEnvelope),
        (status = 404, description = "No such account (or erased)", body = ErrorEnvelope),
    )
)]
#[put("/users/{userId}/quotas")]
pub async fn set_user_quotas(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::QuotasWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<SetQuotas>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let overrides = parse_overrides(body.overrides, &QuotaKey::USER)?;
    let report = QuotaService::new(&state)
        .set_user_quotas(
            admin.0.user_id,
            path.into_inner(),
            body.plan,
            overrides,
            &origin.0,
        )
        .await?;
    Ok(envelope::ok(QuotasView::from(report)))
}
