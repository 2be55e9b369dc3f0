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
    /// The organization's or account's quota for this kind of thing is used up.
    #[error(transparent)]
    QuotaExceeded(#[from] crate::quotas::QuotaExceeded),
}

/// A storage failure or a rule the fresh data broke.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleStoreError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// Characters that change how text around them is shown without showing themselves: the
/// bidirectional overrides, embeddings, isolates and marks (U+202E turns `gpj.exe` into
/// `exe.jpg`), zero-width spaces and the byte-order mark. Names and addresses refuse them; the
/// zero-width joiner is kept, emoji sequences need it.
pub fn is_hidden_format(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}' | '\u{200C}' | '\u{200E}' | '\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}'
    )
}

fn checked_text(
    value: Option<&str>,
    field: &'static str,
    max: usize,
    message: &'static str,
    allowed_control: &[char],
) -> Result<Option<String>, RuleError> {
    let Some(value) = value.map(str::trim).filter(|value| !value.is_empty()) else {
        return Ok(None);
    };
    let bad = |c: char| (c.is_control() && !allowed_control.contains(&c)) || is_hidden_format(c);
    if value.chars().count() > max || value.chars().any(bad) {
        return Err(RuleError::Invalid { field, message });
    }
    Ok(Some(value.to_owned()))
}

/// A trimmed single-line value of at most `max` characters; blank is `None`.
pub(crate) fn optional_line(
    value: Option<&str>,
    field: &'static str,
    max: usize,
    message: &'static str,
) -> Result<Option<String>, RuleError> {
    checked_text(value, field, max, message, &[])
}

/// Like [`optional_line`], for free text where line breaks belong (notes, descriptions).
pub(crate) fn optional_text(
    value: Option<&str>,
    field: &'static str,
    max: usize,
    message: &'static str,
) -> Result<Option<String>, RuleError> {
    checked_text(value, field, max, message, &['\n'])
}
