//! Settings refusals at the HTTP edge.

use steward_domain::settings::locks::{Rejection, SettingRuleError};
use steward_domain::settings::store::SettingsStoreError;

use crate::error::{ApiError, ErrorCode, FieldError};

impl From<SettingRuleError> for ApiError {
    fn from(error: SettingRuleError) -> Self {
        match &error {
            SettingRuleError::Locked { key, .. } => {
                ApiError::new(ErrorCode::SettingLocked, error.to_string()).with_details(vec![FieldError {
                    field: key.clone(),
                    message: "locked".to_owned(),
                }])
            }
            SettingRuleError::Forbidden(message) => ApiError::new(ErrorCode::Forbidden, *message),
            SettingRuleError::Unknown(key) => ApiError::not_found(format!("unknown setting `{key}`")),
            SettingRuleError::Invalid { key, message } => ApiError::invalid(key, message.clone()),
            SettingRuleError::Conflict(message) => ApiError::new(ErrorCode::Conflict, *message),
        }
    }
}

impl From<SettingsStoreError> for ApiError {
    fn from(error: SettingsStoreError) -> Self {
        match error {
            SettingsStoreError::Rule(rule) => rule.into(),
            SettingsStoreError::Repository(repository) => repository.into(),
        }
    }
}

/// An all-or-nothing write refused for some keys: every refusal is listed; the status follows
/// the kind (locks alone → 409 `SETTING_LOCKED`, unknown keys alone → 404, lock changes the
/// caller may not make → 403, otherwise 400).
pub fn rejected_write(rejected: &[Rejection]) -> ApiError {
    let details = rejected
        .iter()
        .map(|r| FieldError {
            field: r.key.clone(),
            message: format!("{}: {}", r.code, r.reason),
        })
        .collect();
    let all = |code: &str| rejected.iter().all(|r| r.code == code);
    let (code, message) = if all("SETTING_LOCKED") {
        (
            ErrorCode::SettingLocked,
            "locked settings cannot be changed; nothing was written",
        )
    } else if all("UNKNOWN_SETTING") {
        (ErrorCode::NotFound, "unknown settings; nothing was written")
    } else if all("FORBIDDEN") {
        (
            ErrorCode::Forbidden,
            "you may not change these locks; nothing was written",
        )
    } else if all("CONFLICT") {
        (
            ErrorCode::Conflict,
            "settings changed meanwhile; nothing was written",
        )
    } else {
        (
            ErrorCode::ValidationError,
            "some settings were refused; nothing was written",
        )
    };
    ApiError::new(code, message).with_details(details)
}
