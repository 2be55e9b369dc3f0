use steward_domain::RepositoryError;
use steward_domain::identity::WeakPassword;

use crate::error::{AppError, ErrorKind, FieldError};

/// Failures of the authentication service, converted once into [`AppError`].
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("the last super_admin cannot be deleted")]
    LastSuperAdmin,
    #[error("this account is locked by an administrator")]
    AccountDisabled,
    #[error("too many failed sign-ins")]
    AccountLocked { retry_after_seconds: i64 },
    #[error("missing or invalid access token")]
    Unauthenticated,
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidRefreshToken,
    #[error("the link is invalid, expired or already used")]
    InvalidEmailToken,
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("invalid fields: {0:?}")]
    InvalidFields(Vec<(&'static str, String)>),
    #[error("the password {0}")]
    WeakPassword(WeakPassword, &'static str),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("not allowed")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("this identity provider is not configured")]
    UnknownProvider,
    #[error(transparent)]
    IdToken(steward_auth::oidc::IdTokenError),
    #[error("the provider has not verified this email address")]
    ProviderEmailUnverified,
    #[error("accounts are not created from this identity provider")]
    ProvisioningOff,
    #[error("an account with this email exists; sign in to it and link the provider")]
    LinkRequired,
    #[error("this provider account is linked to another user")]
    AlreadyLinked,
    #[error("this is the last way to sign in to the account")]
    LastSignInMethod,
    #[error("the code is wrong or was already used")]
    InvalidMfaCode,
    #[error("the MFA token is invalid, expired or already used")]
    InvalidMfaToken,
    #[error("{0}")]
    MfaState(&'static str),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("token signing failed: {0}")]
    Signing(String),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailTemplateError),
    #[error(transparent)]
    Rule(steward_domain::RuleError),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

impl From<steward_domain::RuleStoreError> for AuthError {
    fn from(error: steward_domain::RuleStoreError) -> Self {
        match error {
            steward_domain::RuleStoreError::Rule(rule) => AuthError::Rule(rule),
            steward_domain::RuleStoreError::Repository(error) => AuthError::Repository(error),
        }
    }
}

impl From<AuthError> for AppError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InvalidCredentials => {
                AppError::new(ErrorKind::InvalidCredentials, "invalid email or password")
            }
            AuthError::AccountLocked { retry_after_seconds } => AppError::new(
                ErrorKind::AccountLocked,
                "too many failed sign-ins for this email; try again later",
            )
            .with_retry_after(u64::try_from(retry_after_seconds).unwrap_or(1)),
            AuthError::InvalidMfaCode => {
                AppError::new(ErrorKind::InvalidMfaCode, "the code is wrong or was already used")
            }
            AuthError::InvalidMfaToken => AppError::new(
                ErrorKind::Unauthenticated,
                "the MFA token is invalid, expired or already used: sign in again",
            ),
            AuthError::MfaState(message) => AppError::conflict(message),
            AuthError::Rule(rule) => rule.into(),
            AuthError::LastSuperAdmin => AppError::conflict(
                "the last super_admin cannot be deleted: make someone else super_admin first",
            ),
            AuthError::AccountDisabled => AppError::new(
                ErrorKind::AccountDisabled,
                "this account is locked by an administrator",
            ),
            AuthError::Unauthenticated => {
                AppError::new(ErrorKind::Unauthenticated, "missing or invalid access token")
            }
            AuthError::InvalidRefreshToken => AppError::new(
                ErrorKind::Unauthenticated,
                "the refresh token is invalid, expired or revoked",
            ),
            AuthError::InvalidEmailToken => {
                AppError::validation("the link is invalid, expired or already used").with_details(vec![
                    FieldError {
                        field: "token".to_owned(),
                        message: "is invalid, expired or already used".to_owned(),
                    },
                ])
            }
            AuthError::Invalid { field, message } => AppError::validation("the request has invalid fields")
                .with_details(vec![FieldError {
                    field: field.to_owned(),
                    message,
                }]),
            AuthError::InvalidFields(problems) => AppError::validation("the request has invalid fields")
                .with_details(
                    problems
                        .into_iter()
                        .map(|(field, message)| FieldError {
                            field: field.to_owned(),
                            message,
                        })
                        .collect(),
                ),
            AuthError::WeakPassword(reason, field) => AppError::validation("the password is not acceptable")
                .with_details(vec![FieldError {
                    field: field.to_owned(),
                    message: reason.to_string(),
                }]),
            AuthError::EmailTaken => {
                AppError::new(ErrorKind::Conflict, "an account with this email already exists")
            }
            AuthError::Forbidden => AppError::new(ErrorKind::Forbidden, "you are not allowed to do this"),
            AuthError::NotFound => AppError::not_found("no such resource"),
            AuthError::UnknownProvider => AppError::not_found("this identity provider is not configured"),
            AuthError::IdToken(error) => AppError::new(ErrorKind::Unauthenticated, error.to_string()),
            AuthError::ProviderEmailUnverified => AppError::new(
                ErrorKind::Forbidden,
                "the provider has not verified this email address",
            ),
            AuthError::ProvisioningOff => AppError::new(
                ErrorKind::Forbidden,
                "this server does not create accounts from its identity provider: ask an administrator for one",
            ),
            AuthError::LinkRequired => AppError::new(
                ErrorKind::AccountLinkRequired,
                "an account with this email exists but its email is not verified: sign in to it and link the provider",
            ),
            AuthError::AlreadyLinked => AppError::new(
                ErrorKind::Conflict,
                "this provider account is linked to another user",
            ),
            AuthError::LastSignInMethod => AppError::new(
                ErrorKind::Conflict,
                "this is the last way to sign in: set a password or link another provider first",
            ),
            AuthError::Mail(error) => error.into(),
            AuthError::Hashing(reason) | AuthError::Signing(reason) => {
                tracing::error!(%reason, "authentication failure");
                AppError::internal()
            }
            AuthError::Repository(RepositoryError::Conflict(_)) => {
                AppError::new(ErrorKind::Conflict, "this conflicts with an existing resource")
            }
            AuthError::Repository(error) => error.into(),
        }
    }
}
