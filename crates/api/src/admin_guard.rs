//! What every `/api/admin/v1` request passes before its handler: the IP allowlist (when
//! enabled, an address outside it is refused with `403 IP_NOT_ALLOWED` unless the request
//! carries a live `X-Steward-Allowlist-Bypass` token); then, with
//! `STEWARD_ADMIN_MFA_REQUIRED=true`, an administrator without a second factor works during
//! the grace period (each answer carries `Steward-Warning: mfa-required-in=<seconds>`) and is
//! refused after it with `403 MFA_REQUIRED` — except `GET /api/admin/v1/me`, which shows the
//! deadline. Enrolling happens at `/api/v1/auth/mfa`, outside this scope.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use steward_app::ip_allowlist::AllowlistDecision;
use steward_domain::mfa::AdminMfaVerdict;

use crate::auth::extractor_support::bearer_token;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The header of an administrator inside the grace period.
pub const WARNING_HEADER: &str = "steward-warning";

/// The header carrying an allowlist bypass token.
pub const BYPASS_HEADER: &str = "x-steward-allowlist-bypass";

/// Refuses admin requests from addresses outside the enabled allowlist. The address is the
/// client IP as `STEWARD_TRUSTED_PROXIES` makes it: `X-Forwarded-For` from an untrusted peer
/// is ignored.
pub async fn admin_allowlist(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, Error> {
    let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(refuse(request, ApiError::internal()));
    };
    let ip = crate::extractors::certain_client_ip(request.request());
    let bypass = request
        .headers()
        .get(BYPASS_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let origin = crate::extractors::Origin::of(request.request()).0;
    let decision = match state.check_allowlist(ip, bypass.as_deref(), &origin).await {
        Ok(decision) => decision,
        Err(error) => return Ok(refuse(request, ApiError::from(error))),
    };
    request.extensions_mut().insert(decision.clone());
    if decision == AllowlistDecision::Refused {
        crate::metrics::record_ip_refused();
        let error = ApiError::new(
            ErrorCode::IpNotAllowed,
            "the admin API does not accept requests from this address",
        );
        return Ok(refuse(request, error));
    }
    next.call(request).await.map(ServiceResponse::map_into_left_body)
}

/// The verdict of this request's caller, for `GET /api/admin/v1/me`.
#[derive(Debug, Clone, Copy)]
pub struct CallerMfaVerdict(pub AdminMfaVerdict);

/// The admin API's route families `STEWARD_USER_MGMT_CORE=off` takes away (the first path
/// segment after `/api/admin/v1/`).
pub const CORE_ROUTES: [&str; 4] = ["users", "roles", "audit-logs", "organizations"];

/// Answers 404, to anyone, on the core routes while `STEWARD_USER_MGMT_CORE` is off: as if
/// they did not exist (they are not decided by who asks).
pub async fn core_routes(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, Error> {
    let off = request
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| !state.features.user_mgmt_core);
    if off {
        // The router's (percent-decoded) path after the scope's `/api/admin/v1`, so
        // `/api/admin/v1/%75sers` is `users` here as it is to the router.
        let family = request
            .match_info()
            .unprocessed()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("")
            .to_owned();
        if CORE_ROUTES.contains(&family.as_str()) {
            return Ok(refuse(request, ApiError::not_found("no such resource")));
        }
    }
    next.call(request).await.map(ServiceResponse::map_into_left_body)
}

pub async fn admin_mfa(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, Error> {
    let state = request.app_data::<web::Data<AppState>>().cloned();
    let token = bearer_token(request.request());
    let (Some(state), Some(token)) = (state.filter(|state| state.auth.admin_mfa_enforced()), token) else {
        return next.call(request).await.map(ServiceResponse::map_into_left_body);
    };
    let ip = crate::extractors::client_ip(request.request()).map(|ip| ip.to_string());
    // An invalid token is the extractor's to refuse (401), with its own answer; any other
    // failure refuses here (never lets the request past unchecked).
    let principal = match state.auth.principal(&token, ip).await {
        Ok(principal) => {
            crate::request_id::note_principal(&principal);
            principal
        }
        Err(steward_app::auth::AuthError::Unauthenticated) => {
            return next.call(request).await.map(ServiceResponse::map_into_left_body);
        }
        Err(error) => return Ok(refuse(request, ApiError::from(error))),
    };
    let verdict = match state.auth.admin_mfa_verdict(principal.user).await {
        Ok(verdict) => verdict,
        Err(error) => return Ok(refuse(request, ApiError::from(error))),
    };
    // The extractors reuse who was identified here (a personal token's use is recorded once).
    request.extensions_mut().insert(principal);
    request.extensions_mut().insert(CallerMfaVerdict(verdict));
    match verdict {
        AdminMfaVerdict::Satisfied => next.call(request).await.map(ServiceResponse::map_into_left_body),
        AdminMfaVerdict::Grace { deadline } => {
            let seconds = (deadline - chrono::Utc::now()).num_seconds().max(0);
            let mut response = next.call(request).await?;
            if let Ok(value) = HeaderValue::from_str(&format!("mfa-required-in={seconds}")) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(WARNING_HEADER), value);
            }
            Ok(response.map_into_left_body())
        }
        AdminMfaVerdict::Required { deadline } => {
            if request.method() == actix_web::http::Method::GET && request.path() == "/api/admin/v1/me" {
                return next.call(request).await.map(ServiceResponse::map_into_left_body);
            }
            let error = ApiError::new(
                ErrorCode::MfaRequired,
                format!(
                    "administrators need a second factor since {}: enrol at POST /api/v1/auth/mfa/totp",
                    deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            );
            Ok(refuse(request, error))
        }
    }
}

/// The refusal as the error envelope, with the error attached so the outer middleware keeps it.
fn refuse<B>(request: ServiceRequest, error: ApiError) -> ServiceResponse<EitherBody<B>> {
    request.error_response(Error::from(error)).map_into_right_body()
}
