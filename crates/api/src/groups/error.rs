//! Group rule refusals at the HTTP edge.

use steward_domain::group_store::GroupStoreError;
use steward_domain::groups::GroupRuleError;

use crate::error::{ApiError, ErrorCode, FieldError};

impl From<GroupRuleError> for ApiError {
    fn from(error: GroupRuleError) -> Self {
        match error {
            GroupRuleError::NotFound => ApiError::not_found("no such group, member or invite"),
            GroupRuleError::Forbidden(message) => ApiError::new(ErrorCode::Forbidden, message),
            GroupRuleError::Conflict(message) => ApiError::new(ErrorCode::Conflict, message),
            GroupRuleError::Invalid { field, message } => ApiError::validation(format!("{field}: {message}"))
                .with_details(vec![FieldError {
                    field: field.to_owned(),
                    message: message.to_owned(),
                }]),
        }
    }
}

impl From<GroupStoreError> for ApiError {
    fn from(error: GroupStoreError) -> Self {
        match error {
            GroupStoreError::Rule(rule) => rule.into(),
            GroupStoreError::Repository(repository) => repository.into(),
        }
    }
}
