//! What a use case refuses, in one type: every domain and store error converts into
//! [`AppError`] here, once. The HTTP shell maps an [`ErrorKind`] to a status and a code in one
//! place (`steward_api::error`); an embedding service maps it to whatever it speaks.

use steward_domain::settings::locks::{Rejection, SettingRuleError};
use steward_domain::settings::store::SettingsStoreError;
use steward_domain::{PaginationError, RepositoryError};

/// Why a use case refused, independent of any transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input breaks a rule; `details` names the fields.
    Invalid,
    /// No credential, or one that is invalid, expired or revoked.
    Unauthenticated,
    /// A wrong email or password at sign-in.
    InvalidCredentials,
    /// A wrong, replayed or used second-factor code.
    InvalidMfaCode,
    /// An IP allowlist change that would refuse the caller's own address.
    AllowlistWouldLockOut,
    /// The organization's or account's quota for what is being created is used up; `quota`
    /// says which.
    QuotaExceeded,
    /// The caller is known but may not do this.
    Forbidden,
    NotFound,
    Conflict,
    /// An account with the provider's email exists and must link the provider first.
    AccountLinkRequired,
    /// The resource changed since the caller read it.
    VersionConflict,
    /// A locked setting cannot be changed.
    SettingLocked,
    /// The device was suspended by its organization.
    DeviceSuspended,
    /// The enrollment token is unknown.
    EnrollmentTokenInvalid,
    /// The enrollment token was revoked or has expired.
    EnrollmentTokenExpired,
    /// The enrollment token has no uses left.
    EnrollmentTokenUsedUp,
    /// The input is larger than the use case takes (rows in an import).
    TooLarge,
    /// Too many attempts; `retry_after` says when to try again.
    RateLimited,
    /// Too many failed sign-ins for this account.
    AccountLocked,
    /// An administrator locked the account.
    AccountDisabled,
    /// The store is unreachable for a moment; retry.
    Unavailable,
    /// A bug or an unexpected store failure; the cause is logged, never shown.
    Internal,
}

/// One problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field as the client named it (camelCase), or a dotted path into the body.
    pub field: String,
    pub message: String,
}

/// A refused use case.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub message: String,
    pub details: Vec<FieldError>,
    /// Seconds until a retry may succeed.
    pub retry_after: Option<u64>,
    /// Which quota refused, with its limit and use ([`ErrorKind::QuotaExceeded`]).
    pub quota: Option<steward_domain::quotas::QuotaExceeded>,
    /// The name of the limit that refused ([`ErrorKind::RateLimited`]), for the
    /// `steward_rate_limited_total{limit}` counter.
    pub limit: Option<&'static str>,
}

impl AppError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
            quota: None,
            limit: None,
        }
    }

    /// Names the limit that refused (see [`AppError::limit`]).
    pub fn with_limit(mut self, limit: &'static str) -> Self {
        self.limit = Some(limit);
        self
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorKind::Internal,
            "an internal error occurred; quote the request id when reporting it",
        )
    }

    /// An input problem naming one field: the message is `<field>: <message>`, repeated in
    /// `details`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::validation(format!("{field}: {message}")).with_details(vec![FieldError {
            field: field.to_owned(),
            message,
        }])
    }

    pub fn with_details(mut self, details: Vec<FieldError>) -> Self {
        self.details = details;
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl From<RepositoryError> for AppError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::NotFound => AppError::not_found("no such resource"),
            RepositoryError::Conflict(_) => AppError::conflict("this conflicts with an existing resource"),
            RepositoryError::VersionConflict => AppError::new(
                ErrorKind::VersionConflict,
                "the resource was changed since you read it; read it again and retry",
            ),
            RepositoryError::Unavailable(reason) => {
                tracing::error!(%reason, "storage unavailable");
                AppError::new(ErrorKind::Unavailable, "the service is temporarily unavailable")
                    .with_retry_after(5)
            }
            RepositoryError::Stopped => AppError::conflict("stopped before it finished; nothing was written"),
            RepositoryError::Other(reason) => {
                tracing::error!(%reason, "storage error");
                AppError::internal()
            }
        }
    }
}

impl From<crate::mail::MailTemplateError> for AppError {
    fn from(error: crate::mail::MailTemplateError) -> Self {
        tracing::error!(%error, "a mail could not be rendered");
        AppError::internal()
    }
}

impl From<steward_domain::quotas::QuotaExceeded> for AppError {
    fn from(exceeded: steward_domain::quotas::QuotaExceeded) -> Self {
        let mut error = AppError::new(
            ErrorKind::QuotaExceeded,
            match exceeded.key.scope() {
                steward_domain::quotas::QuotaScope::Organization
                    if exceeded.key == steward_domain::quotas::QuotaKey::ImportsPerDay =>
                {
                    format!(
                        "{exceeded}; an import counts for 24 hours: try later, or ask your operator to raise the organization's quota"
                    )
                }
                steward_domain::quotas::QuotaScope::Organization => format!(
                    "{exceeded}; ask your operator to raise the organization's quota (or remove some first)"
                ),
                steward_domain::quotas::QuotaScope::User => {
                    format!("{exceeded}; ask your operator to raise the quota (or remove some first)")
                }
            },
        );
        error.quota = Some(exceeded);
        error
    }
}

impl From<steward_domain::RuleError> for AppError {
    fn from(error: steward_domain::RuleError) -> Self {
        use steward_domain::RuleError;
        match error {
            RuleError::NotFound => AppError::not_found("no such resource"),
            RuleError::Forbidden(message) => AppError::forbidden(message),
            RuleError::Conflict(message) => AppError::conflict(message),
            RuleError::Invalid { field, message } => AppError::invalid(field, message),
            RuleError::QuotaExceeded(exceeded) => exceeded.into(),
        }
    }
}

impl From<steward_domain::RuleStoreError> for AppError {
    fn from(error: steward_domain::RuleStoreError) -> Self {
        match error {
            steward_domain::RuleStoreError::Rule(rule) => rule.into(),
            steward_domain::RuleStoreError::Repository(repository) => repository.into(),
        }
    }
}

impl From<steward_domain::fleet::EnrollmentRefusal> for AppError {
    fn from(refusal: steward_domain::fleet::EnrollmentRefusal) -> Self {
        use steward_domain::fleet::EnrollmentRefusal;
        let kind = match refusal {
            EnrollmentRefusal::Unknown => ErrorKind::EnrollmentTokenInvalid,
            EnrollmentRefusal::Revoked | EnrollmentRefusal::Expired => ErrorKind::EnrollmentTokenExpired,
            EnrollmentRefusal::UsedUp => ErrorKind::EnrollmentTokenUsedUp,
        };
        AppError::new(kind, refusal.to_string()).with_details(vec![FieldError {
            field: "enrollmentToken".to_owned(),
            message: refusal.reason().to_owned(),
        }])
    }
}

impl From<PaginationError> for AppError {
    fn from(error: PaginationError) -> Self {
        let field = match error {
            PaginationError::PageOutOfRange => "page",
            PaginationError::PerPageOutOfRange => "perPage",
        };
        AppError::validation("invalid pagination").with_details(vec![FieldError {
            field: field.to_owned(),
            message: error.to_string(),
        }])
    }
}

impl From<SettingRuleError> for AppError {
    fn from(error: SettingRuleError) -> Self {
        match &error {
            SettingRuleError::Locked { key, .. } => {
                AppError::new(ErrorKind::SettingLocked, error.to_string()).with_details(vec![FieldError {
                    field: key.clone(),
                    message: "locked".to_owned(),
                }])
            }
            SettingRuleError::Forbidden(message) => AppError::forbidden(*message),
            SettingRuleError::Unknown(key) => AppError::not_found(format!("unknown setting `{key}`")),
            SettingRuleError::Invalid { key, message } => AppError::invalid(key, message.clone()),
            SettingRuleError::Conflict(message) => AppError::conflict(*message),
        }
    }
}

impl From<SettingsStoreError> for AppError {
    fn from(error: SettingsStoreError) -> Self {
        match error {
            SettingsStoreError::Rule(rule) => rule.into(),
            SettingsStoreError::Repository(repository) => repository.into(),
        }
    }
}

/// An all-or-nothing write refused for some keys: every refusal is listed; the kind follows
/// the refusals (locks alone → `SettingLocked`, unknown keys alone → `NotFound`, lock changes
/// the caller may not make → `Forbidden`, otherwise `Invalid`).
pub fn rejected_write(rejected: &[Rejection]) -> AppError {
    let details = rejected
        .iter()
        .map(|r| FieldError {
            field: r.key.clone(),
            message: format!("{}: {}", r.code, r.reason),
        })
        .collect();
    let all = |code: &str| rejected.iter().all(|r| r.code == code);
    let (kind, message) = if all("SETTING_LOCKED") {
        (
            ErrorKind::SettingLocked,
            "locked settings cannot be changed; nothing was written",
        )
    } else if all("UNKNOWN_SETTING") {
        (ErrorKind::NotFound, "unknown settings; nothing was written")
    } else if all("FORBIDDEN") {
        (
            ErrorKind::Forbidden,
            "you may not change these locks; nothing was written",
        )
    } else if all("CONFLICT") {
        (
            ErrorKind::Conflict,
            "settings changed meanwhile; nothing was written",
        )
    } else {
        (
            ErrorKind::Invalid,
            "some settings were refused; nothing was written",
        )
    };
    AppError::new(kind, message).with_details(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_never_leak_their_cause() {
        let error: AppError = RepositoryError::Other("relation \"users\" does not exist".into()).into();
        assert_eq!(error.kind, ErrorKind::Internal);
        assert!(!error.message.contains("users"));
    }

    #[test]
    fn an_unreachable_store_asks_for_a_retry() {
        let error: AppError = RepositoryError::Unavailable("connection refused".into()).into();
        assert_eq!(error.kind, ErrorKind::Unavailable);
        assert_eq!(error.retry_after, Some(5));
        assert!(!error.message.contains("refused"));
    }
}
