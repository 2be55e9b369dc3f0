//! Page arithmetic shared by every list endpoint.

/// The largest page a client may ask for, so one request cannot pull a whole table.
pub const MAX_PER_PAGE: u64 = 100;
/// The highest page number: far beyond any real list, and small enough that the offset it
/// gives always fits the databases' integers.
pub const MAX_PAGE: u64 = 1_000_000;
/// The page size when the client does not say.
pub const DEFAULT_PER_PAGE: u64 = 20;

/// A validated request for one page of a list, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    page: u64,
    per_page: u64,
}

/// Why a page request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PaginationError {
    #[error("page must be between 1 and {MAX_PAGE}")]
    PageOutOfRange,
    #[error("perPage must be between 1 and {MAX_PER_PAGE}")]
    PerPageOutOfRange,
}

impl PageRequest {
    /// Builds a page request from optional client input, applying the defaults.
    pub fn parse(page: Option<u64>, per_page: Option<u64>) -> Result<Self, PaginationError> {
        let page = page.unwrap_or(1);
        let per_page = per_page.unwrap_or(DEFAULT_PER_PAGE);
        if page == 0 || page > MAX_PAGE {
            return Err(PaginationError::PageOutOfRange);
        }
        if per_page == 0 || per_page > MAX_PER_PAGE {
            return Err(PaginationError::PerPageOutOfRange);
        }
        Ok(Self { page, per_page })
    }

    pub fn page(&self) -> u64 {
        self.page
    }

    pub fn per_page(&self) -> u64 {
        self.per_page
    }

    /// Rows to skip before this page starts.
    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.per_page)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_the_client_says_nothing() {
        let page = PageRequest::parse(None, None).unwrap();
        assert_eq!((page.page(), page.per_page(), page.offset()), (1, 20, 0));
    }

    #[test]
    fn offset_counts_whole_pages_before_this_one() {
        let page = PageRequest::parse(Some(3), Some(50)).unwrap();
        assert_eq!(page.offset(), 100);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert_eq!(
            PageRequest::parse(Some(0), None),
            Err(PaginationError::PageOutOfRange)
        );
        assert_eq!(
            PageRequest::parse(None, Some(0)),
            Err(PaginationError::PerPageOutOfRange)
        );
        assert_eq!(
            PageRequest::parse(None, Some(101)),
            Err(PaginationError::PerPageOutOfRange)
        );
        assert!(PageRequest::parse(None, Some(100)).is_ok());
        assert_eq!(
            PageRequest::parse(Some(MAX_PAGE + 1), None),
            Err(PaginationError::PageOutOfRange)
        );
        assert_eq!(
            PageRequest::parse(Some(MAX_PAGE), Some(MAX_PER_PAGE)).map(|p| p.offset()),
            Ok((MAX_PAGE - 1) * MAX_PER_PAGE)
        );
    }
}
