//! How a domain rule refuses a request, shared by groups, devices and organizations, and the
//! error of stores that decide with those rules inside their transactions.

use crate::RepositoryError;

/// Why a rule refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The caller may not see the resource (or it is gone): answered as 404 so IDs can't be
    /// probed.
    #[error("not found")]
    NotFound,
    /// The caller sees the resource but their role does not allow this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The request would break an invariant or clashes with the resource's state.
    #[error("{0}")]
    Conflict(&'static str),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: &'static str,
    },
}

/// A storage failure or a rule the fresh data broke.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleStoreError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}
