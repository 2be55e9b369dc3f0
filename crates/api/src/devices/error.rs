//! Device rule refusals at the HTTP edge.

use steward_domain::devices::{DeviceRuleError, DeviceStoreError};

use crate::error::{ApiError, ErrorCode, FieldError};

impl From<DeviceRuleError> for ApiError {
    fn from(error: DeviceRuleError) -> Self {
        match error {
            DeviceRuleError::NotFound => ApiError::not_found("no such device, user or transfer"),
            DeviceRuleError::Conflict(message) => ApiError::new(ErrorCode::Conflict, message),
            DeviceRuleError::Invalid { field, message } => {
                ApiError::validation(format!("{field}: {message}")).with_details(vec![FieldError {
                    field: field.to_owned(),
                    message: message.to_owned(),
                }])
            }
        }
    }
}

impl From<DeviceStoreError> for ApiError {
    fn from(error: DeviceStoreError) -> Self {
        match error {
            DeviceStoreError::Rule(rule) => rule.into(),
            DeviceStoreError::Repository(repository) => repository.into(),
        }
    }
}
