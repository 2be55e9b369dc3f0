//! The error every repository trait answers with.
//!
//! Persistence maps its own errors into these variants so the layers above can decide on a
//! response without knowing which database or ORM produced the failure.

/// Why a repository call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RepositoryError {
    /// The row the caller asked for does not exist (or is not visible to them).
    #[error("not found")]
    NotFound,
    /// A uniqueness or foreign-key rule refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The stored `version` moved on since the caller read it.
    #[error("the resource was changed by someone else")]
    VersionConflict,
    /// The database could not be reached or timed out; worth retrying later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The caller asked the work to stop (a cancelled job) and nothing was written.
    #[error("stopped before it finished; nothing was written")]
    Stopped,
    /// Anything else; the message is for logs, never for clients.
    #[error("storage error: {0}")]
    Other(String),
}
