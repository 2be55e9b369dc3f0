//! How long an approved unlock lifts a lock: for good, for 1 to 43 200 minutes (30 days), or
//! until a moment in the future — decided here once, for every caller.

use chrono::{DateTime, Duration, Utc};

use crate::rules::RuleError;

/// The longest temporary unlock, in minutes (30 days).
pub const MAX_UNLOCK_MINUTES: i64 = 43_200;

/// How long an approved unlock lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlockWindow {
    Forever,
    For(Duration),
    Until(DateTime<Utc>),
}

impl UnlockWindow {
    /// The window an approval asks for: `durationMinutes` or `until`, not both; neither means
    /// for good.
    pub fn parse(duration_minutes: Option<i64>, until: Option<DateTime<Utc>>) -> Result<Self, RuleError> {
        match (duration_minutes, until) {
            (Some(_), Some(_)) => Err(RuleError::Invalid {
                field: "until",
                message: "give durationMinutes or until, not both",
            }),
            (Some(minutes), None) if (1..=MAX_UNLOCK_MINUTES).contains(&minutes) => {
                Ok(Self::For(Duration::minutes(minutes)))
            }
            (Some(_), None) => Err(RuleError::Invalid {
                field: "durationMinutes",
                message: "must be 1 to 43200 (30 days)",
            }),
            (None, Some(until)) => Ok(Self::Until(until)),
            (None, None) => Ok(Self::Forever),
        }
    }

    /// When the lifted lock returns (`None`: never), approved at `now`; an `until` that is not
    /// in the future is refused.
    pub fn ends_at(self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, RuleError> {
        match self {
            Self::Forever => Ok(None),
            Self::For(duration) => Ok(Some(now + duration)),
            Self::Until(at) if at > now => Ok(Some(at)),
            Self::Until(_) => Err(RuleError::Invalid {
                field: "until",
                message: "must be in the future",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_forever_a_bounded_duration_or_a_future_moment() {
        let now = Utc::now();
        assert_eq!(UnlockWindow::parse(None, None), Ok(UnlockWindow::Forever));
        assert_eq!(
            UnlockWindow::parse(Some(1), None),
            Ok(UnlockWindow::For(Duration::minutes(1)))
        );
        assert!(UnlockWindow::parse(Some(MAX_UNLOCK_MINUTES), None).is_ok());
        for refused in [0, -1, MAX_UNLOCK_MINUTES + 1, i64::MAX, i64::MIN] {
            assert!(UnlockWindow::parse(Some(refused), None).is_err(), "{refused}");
        }
        assert!(UnlockWindow::parse(Some(5), Some(now)).is_err());

        assert_eq!(UnlockWindow::Forever.ends_at(now), Ok(None));
        assert_eq!(
            UnlockWindow::For(Duration::minutes(5)).ends_at(now),
            Ok(Some(now + Duration::minutes(5)))
        );
        let later = now + Duration::seconds(1);
        assert_eq!(UnlockWindow::Until(later).ends_at(now), Ok(Some(later)));
        assert!(UnlockWindow::Until(now).ends_at(now).is_err());
        assert!(UnlockWindow::Until(now - Duration::days(1)).ends_at(now).is_err());
    }
}
