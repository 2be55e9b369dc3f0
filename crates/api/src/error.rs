//! The one error type of the HTTP edge and its envelope.
//!
//! Every failure — from a handler, an extractor, the router or a lower layer — leaves Steward as
//! `{"success": false, "error": {code, message, details, requestId}}`, never as a framework's
//! plain text, so clients need one error parser.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use steward_app::{AppError, ErrorKind};
use steward_domain::{PaginationError, RepositoryError};
use steward_persistence::PersistenceError;
use utoipa::ToSchema;

use crate::request_id;

/// Machine-readable error codes; each has one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    ValidationError,
    Unauthorized,
    InvalidCredentials,
    /// A wrong second-factor code, one already used, or a used recovery code.
    InvalidMfaCode,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    AccountLinkRequired,
    VersionConflict,
    SettingLocked,
    /// The device was suspended by its organization.
    DeviceSuspended,
    /// The enrollment token is unknown.
    EnrollmentTokenInvalid,
    /// The enrollment token was revoked or has expired.
    EnrollmentTokenExpired,
    /// The enrollment token has no uses left.
    EnrollmentTokenUsedUp,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    AccountLocked,
    /// An administrator locked the account (sign-in with the right password).
    AccountDisabled,
    /// An administrator without a second factor, after the grace period.
    MfaRequired,
    /// The admin API's IP allowlist does not hold the caller's address.
    IpNotAllowed,
    /// An allowlist change that would refuse the caller's own address.
    AllowlistWouldLockOut,
    /// An organization's or account's quota is used up; `quota` in the error names it.
    QuotaExceeded,
    ServiceUnavailable,
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::ValidationError => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized | ErrorCode::InvalidCredentials | ErrorCode::InvalidMfaCode => {
                StatusCode::UNAUTHORIZED
            }
            ErrorCode::Forbidden
            | ErrorCode::DeviceSuspended
            | ErrorCode::AccountDisabled
            | ErrorCode::MfaRequired
            | ErrorCode::IpNotAllowed => StatusCode::FORBIDDEN,
            ErrorCode::EnrollmentTokenInvalid => StatusCode::UNAUTHORIZED,
            ErrorCode::EnrollmentTokenExpired => StatusCode::GONE,
            ErrorCode::EnrollmentTokenUsedUp => StatusCode::CONFLICT,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Conflict
            | ErrorCode::AccountLinkRequired
            | ErrorCode::VersionConflict
            | ErrorCode::SettingLocked
            | ErrorCode::AllowlistWouldLockOut
            | ErrorCode::QuotaExceeded => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::RateLimited | ErrorCode::AccountLocked => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code for a status produced outside Steward's handlers (router, framework).
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            409 => ErrorCode::Conflict,
            413 => ErrorCode::PayloadTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            429 => ErrorCode::RateLimited,
            503 => ErrorCode::ServiceUnavailable,
            400..=499 => ErrorCode::ValidationError,
            _ => ErrorCode::Internal,
        }
    }
}

/// One problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field as the client named it (camelCase), or a dotted path into the body.
    pub field: String,
    pub message: String,
}

/// The `error` member of an error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
    /// Quote this when reporting a problem; it is also in the `X-Request-Id` header and the logs.
    pub request_id: Option<String>,
    /// With `QUOTA_EXCEEDED` (and `RATE_LIMITED` by an organization's
    /// `api_requests_per_minute`): which quota, its limit and how much is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaView>,
}

/// A quota that refused a creation (or a request).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuotaView {
    /// The quota's key: an organization's (`devices`, `users`, …) or an account's
    /// (`personal_devices`, …); see the quotas in the organizations guide.
    pub key: String,
    pub limit: u64,
    pub used: u64,
}

/// Every error response has this shape.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorBody,
}

/// An error on its way to the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Vec<FieldError>,
    /// Seconds until a retry may succeed, sent as `Retry-After`.
    pub retry_after: Option<u64>,
    pub quota: Option<QuotaView>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
            quota: None,
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorCode::Internal,
            "an internal error occurred; quote the request id when reporting it",
        )
    }

    /// A 400 naming one bad field: the message is `<field>: <message>`, repeated in `details`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::validation(format!("{field}: {message}")).with_details(vec![FieldError {
            field: field.to_owned(),
            message,
        }])
    }

    /// A 415 for a request body with a `Content-Encoding` (Steward reads bodies uncompressed).
    pub fn unsupported_encoding() -> Self {
        Self::new(
            ErrorCode::UnsupportedMediaType,
            "request bodies are read as sent: send them without a Content-Encoding (gzip, br, zstd, deflate are not accepted)",
        )
    }

    pub fn with_details(mut self, details: Vec<FieldError>) -> Self {
        self.details = details;
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The generic error for a status that did not come from an `ApiError` (router, framework).
    pub fn for_status(status: StatusCode) -> Self {
        let code = ErrorCode::for_status(status);
        let message = match code {
            ErrorCode::NotFound => "no such resource".to_owned(),
            ErrorCode::MethodNotAllowed => "this method is not allowed on this resource".to_owned(),
            ErrorCode::Internal => return Self::internal(),
            _ => status.canonical_reason().unwrap_or("request refused").to_owned(),
        };
        Self::new(code, message)
    }

    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            success: false,
            error: ErrorBody {
                code: self.code,
                message: self.message.clone(),
                details: self.details.clone(),
                request_id: request_id::current(),
                quota: self.quota.clone(),
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
        }
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        response.json(self.envelope())
    }
}

impl From<AppError> for ApiError {
    /// The one mapping of a use case's refusal to the wire: a kind has one code (and status).
    fn from(error: AppError) -> Self {
        if error.kind == ErrorKind::RateLimited {
            // The use cases name their limits (an organization's requests per minute, open
            // jobs); one that does not is counted as `other`, never as another's.
            crate::metrics::record_rate_limited(error.limit.unwrap_or("other"));
        }
        let code = match error.kind {
            ErrorKind::Invalid => ErrorCode::ValidationError,
            ErrorKind::Unauthenticated => ErrorCode::Unauthorized,
            ErrorKind::InvalidCredentials => ErrorCode::InvalidCredentials,
            ErrorKind::Forbidden => ErrorCode::Forbidden,
            ErrorKind::NotFound => ErrorCode::NotFound,
            ErrorKind::Conflict => ErrorCode::Conflict,
            ErrorKind::AccountLinkRequired => ErrorCode::AccountLinkRequired,
            ErrorKind::VersionConflict => ErrorCode::VersionConflict,
            ErrorKind::SettingLocked => ErrorCode::SettingLocked,
            ErrorKind::DeviceSuspended => ErrorCode::DeviceSuspended,
            ErrorKind::EnrollmentTokenInvalid => ErrorCode::EnrollmentTokenInvalid,
            ErrorKind::EnrollmentTokenExpired => ErrorCode::EnrollmentTokenExpired,
            ErrorKind::EnrollmentTokenUsedUp => ErrorCode::EnrollmentTokenUsedUp,
            ErrorKind::TooLarge => ErrorCode::PayloadTooLarge,
            ErrorKind::RateLimited => ErrorCode::RateLimited,
            ErrorKind::AccountLocked => ErrorCode::AccountLocked,
            ErrorKind::AccountDisabled => ErrorCode::AccountDisabled,
            ErrorKind::InvalidMfaCode => ErrorCode::InvalidMfaCode,
            ErrorKind::AllowlistWouldLockOut => ErrorCode::AllowlistWouldLockOut,
            ErrorKind::QuotaExceeded => ErrorCode::QuotaExceeded,
            ErrorKind::Unavailable => ErrorCode::ServiceUnavailable,
            ErrorKind::Internal => ErrorCode::Internal,
        };
        ApiError {
            code,
            message: error.message,
            details: error
                .details
                .into_iter()
                .map(|detail| FieldError {
                    field: detail.field,
                    message: detail.message,
                })
                .collect(),
            retry_after: error.retry_after,
            quota: error.quota.map(|exceeded| QuotaView {
                key: exceeded.key.as_str().to_owned(),
                limit: exceeded.limit,
                used: exceeded.used,
            }),
        }
    }
}

/// Errors of the domain and the application reach the client through [`AppError`], so each
/// is classified once, in `steward_app::error`.
macro_rules! through_app_error {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for ApiError {
            fn from(error: $error) -> Self {
                AppError::from(error).into()
            }
        })*
    };
}

through_app_error!(
    RepositoryError,
    PaginationError,
    steward_domain::RuleError,
    steward_domain::RuleStoreError,
    steward_domain::fleet::EnrollmentRefusal,
    steward_domain::settings::locks::SettingRuleError,
    steward_domain::settings::store::SettingsStoreError,
    steward_app::auth::AuthError,
);

impl From<PersistenceError> for ApiError {
    fn from(error: PersistenceError) -> Self {
        RepositoryError::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serialises_as_the_documented_name() {
        let names: Vec<String> = [
            ErrorCode::ValidationError,
            ErrorCode::VersionConflict,
            ErrorCode::SettingLocked,
            ErrorCode::PayloadTooLarge,
            ErrorCode::AccountLocked,
            ErrorCode::Internal,
        ]
        .iter()
        .map(|code| serde_json::to_value(code).unwrap().as_str().unwrap().to_owned())
        .collect();
        assert_eq!(
            names,
            [
                "VALIDATION_ERROR",
                "VERSION_CONFLICT",
                "SETTING_LOCKED",
                "PAYLOAD_TOO_LARGE",
                "ACCOUNT_LOCKED",
                "INTERNAL"
            ]
        );
    }

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(ErrorCode::RateLimited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(ErrorCode::SettingLocked.status(), StatusCode::CONFLICT);
        assert_eq!(
            ErrorCode::for_status(StatusCode::IM_A_TEAPOT),
            ErrorCode::ValidationError
        );
        assert_eq!(
            ErrorCode::for_status(StatusCode::BAD_GATEWAY),
            ErrorCode::Internal
        );
    }

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let error: ApiError = RepositoryError::Other("relation \"users\" does not exist".into()).into();
        assert_eq!(error.code, ErrorCode::Internal);
        assert!(!error.message.contains("users"));
    }
}
