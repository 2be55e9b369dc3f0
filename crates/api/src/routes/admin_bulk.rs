//! `POST /api/admin/v1/users/bulk`: one action for up to 500 accounts, answered per account.

use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use steward_app::admin_bulk::BulkAction;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::state::AppState;

/// One action for many accounts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkRequest {
    /// `lock`, `unlock`, `delete`, `assign_role` or `remove_role`.
    pub action: String,
    /// 1 to 500 accounts; duplicates count once.
    pub user_ids: Vec<Uuid>,
    /// The role of `assign_role` and `remove_role`.
    pub role: Option<String>,
}

/// One account's outcome.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkResultView {
    pub user_id: Uuid,
    /// `done` or `refused`.
    pub status: &'static str,
    /// Why it was refused: the code the single-user endpoint would answer.
    pub code: Option<ErrorCode>,
    pub message: Option<String>,
}

/// Every account's outcome, in the order given.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkResponse {
    pub results: Vec<BulkResultView>,
    pub done: usize,
    pub refused: usize,
}

/// Lock, unlock, delete, or grant or take a role from up to 500 accounts (`users:write`, plus
/// `users:lock` or `users:unlock` for those actions). Each account is decided exactly as by the
/// single-user endpoint — the last super_admin, your own account, roles you may not grant — and
/// answered on its own; the request as a whole is `200` unless it does not parse or you lack
/// the action's permission.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = BulkRequest,
    responses(
        (status = 200, body = Envelope<BulkResponse>),
        (status = 400, description = "Unknown action, no or more than 500 users, a role missing or misplaced", body = ErrorEnvelope),
        (status = 403, description = "No `users:write`, or not the action's permission", body = ErrorEnvelope),
    )
)]
#[post("/users/bulk")]
pub async fn bulk_users(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersWrite>,
    origin: Origin,
    body: Json<BulkRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let action = BulkAction::parse(&body.action, body.role)?;
    let outcomes = state
        .steward
        .bulk_users(&admin.0.principal, action, body.user_ids, &origin.0)
        .await?;
    let results: Vec<BulkResultView> = outcomes
        .into_iter()
        .map(|outcome| match outcome.result {
            Ok(()) => BulkResultView {
                user_id: outcome.user,
                status: "done",
                code: None,
                message: None,
            },
            Err(error) => {
                let error = ApiError::from(error);
                BulkResultView {
                    user_id: outcome.user,
                    status: "refused",
                    code: Some(error.code),
                    message: Some(error.message),
                }
            }
        })
        .collect();
    let done = results.iter().filter(|result| result.status == "done").count();
    Ok(envelope::ok(BulkResponse {
        refused: results.len() - done,
        done,
        results,
    }))
}
