use steward_domain::RepositoryError;
use steward_domain::identity::WeakPassword;

use crate::error::{ApiError, ErrorCode, FieldError};

/// Failures of the authentication service, converted once into [`ApiError`].
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid email or password")]
    InvalidCredentials,
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
    #[error("an account with this email exists; sign in to it and link the provider")]
    LinkRequired,
    #[error("this provider account is linked to another user")]
    AlreadyLinked,
    #[error("this is the last way to sign in to the account")]
    LastSignInMethod,
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("token signing failed: {0}")]
    Signing(String),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InvalidCredentials => {
                ApiError::new(ErrorCode::InvalidCredentials, "invalid email or password")
            }
            AuthError::AccountLocked { retry_after_seconds } => ApiError::new(
                ErrorCode::AccountLocked,
                "too many failed sign-ins for this email; try again later",
            )
            .with_retry_after(u64::try_from(retry_after_seconds).unwrap_or(1)),
            AuthError::Unauthenticated => {
                ApiError::new(ErrorCode::Unauthorized, "missing or invalid access token")
            }
            AuthError::InvalidRefreshToken => ApiError::new(
                ErrorCode::Unauthorized,
                "the refresh token is invalid, expired or revoked",
            ),
            AuthError::InvalidEmailToken => {
                ApiError::validation("the link is invalid, expired or already used").with_details(vec![
                    FieldError {
                        field: "token".to_owned(),
                        message: "is invalid, expired or already used".to_owned(),
                    },
                ])
            }
            AuthError::Invalid { field, message } => ApiError::validation("the request has invalid fields")
                .with_details(vec![FieldError {
                    field: field.to_owned(),
                    message,
                }]),
            AuthError::InvalidFields(problems) => ApiError::validation("the request has invalid fields")
                .with_details(
                    problems
                        .into_iter()
                        .map(|(field, message)| FieldError {
                            field: field.to_owned(),
                            message,
                        })
                        .collect(),
                ),
            AuthError::WeakPassword(reason, field) => ApiError::validation("the password is not acceptable")
                .with_details(vec![FieldError {
                    field: field.to_owned(),
                    message: reason.to_string(),
                }]),
            AuthError::EmailTaken => {
                ApiError::new(ErrorCode::Conflict, "an account with this email already exists")
            }
            AuthError::Forbidden => ApiError::new(ErrorCode::Forbidden, "you are not allowed to do this"),
            AuthError::NotFound => ApiError::not_found("no such resource"),
            AuthError::UnknownProvider => ApiError::not_found("this identity provider is not configured"),
            AuthError::IdToken(error) => ApiError::new(ErrorCode::Unauthorized, error.to_string()),
            AuthError::ProviderEmailUnverified => ApiError::new(
                ErrorCode::Forbidden,
                "the provider has not verified this email address",
            ),
            AuthError::LinkRequired => ApiError::new(
                ErrorCode::AccountLinkRequired,
                "an account with this email exists but its email is not verified: sign in to it and link the provider",
            ),
            AuthError::AlreadyLinked => ApiError::new(
                ErrorCode::Conflict,
                "this provider account is linked to another user",
            ),
            AuthError::LastSignInMethod => ApiError::new(
                ErrorCode::Conflict,
                "this is the last way to sign in: set a password or link another provider first",
            ),
            AuthError::Hashing(reason) | AuthError::Signing(reason) => {
                tracing::error!(%reason, "authentication failure");
                ApiError::internal()
            }
            AuthError::Repository(RepositoryError::Conflict(_)) => {
                ApiError::new(ErrorCode::Conflict, "this conflicts with an existing resource")
            }
            AuthError::Repository(error) => error.into(),
        }
    }
}
