//! Sign-in sessions and refresh-token rotation rules.

use chrono::{DateTime, Duration, Utc};

/// Lifetimes and windows of the identity tokens (PRODUCT.md "Identity and tokens").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetimes {
    pub access: Duration,
    pub refresh: Duration,
    /// After a rotation, presenting the previous refresh token within this window answers the
    /// same successor instead of revoking the family. Zero disables it.
    pub refresh_grace: Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            access: Duration::hours(1),
            refresh: Duration::days(30),
            refresh_grace: Duration::seconds(10),
        }
    }
}

/// What is known about a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshTokenState {
    pub expires_at: DateTime<Utc>,
    /// When it was exchanged for a successor, if it was.
    pub used_at: Option<DateTime<Utc>>,
    /// Whether its successor has itself been exchanged (then this token is an older ancestor).
    pub successor_used: bool,
    /// Whether the session (the family) is still live.
    pub session_active: bool,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Unused and valid: exchange it for a successor.
    Rotate,
    /// The immediately previous token within the grace window: answer the same successor.
    ReplaySuccessor,
    /// A used token outside the rules: someone replayed it. Revoke the family.
    ReuseDetected,
    /// Expired, or its session is gone: refuse without further effect.
    Reject,
}

/// Decides a refresh. Pure, so the rule is the same on every instance and database.
pub fn decide_refresh(token: RefreshTokenState, now: DateTime<Utc>, grace: Duration) -> RefreshDecision {
    if !token.session_active || token.expires_at <= now {
        return RefreshDecision::Reject;
    }
    match token.used_at {
        None => RefreshDecision::Rotate,
        Some(used_at) if grace > Duration::zero() && now - used_at <= grace && !token.successor_used => {
            RefreshDecision::ReplaySuccessor
        }
        Some(_) => RefreshDecision::ReuseDetected,
    }
}

/// Brute-force protection of one email address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottlePolicy {
    /// Password checks allowed per window before the address locks.
    pub max_attempts: i32,
    pub window: Duration,
    pub lockout: Duration,
}

impl Default for LoginThrottlePolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            window: Duration::minutes(15),
            lockout: Duration::minutes(15),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(used_seconds_ago: Option<i64>, successor_used: bool) -> (RefreshTokenState, DateTime<Utc>) {
        let now = Utc::now();
        (
            RefreshTokenState {
                expires_at: now + Duration::days(1),
                used_at: used_seconds_ago.map(|s| now - Duration::seconds(s)),
                successor_used,
                session_active: true,
            },
            now,
        )
    }

    #[test]
    fn the_refresh_decision_table() {
        let grace = Duration::seconds(10);
        let cases = [
            (None, false, grace, RefreshDecision::Rotate),
            (Some(3), false, grace, RefreshDecision::ReplaySuccessor),
            (Some(10), false, grace, RefreshDecision::ReplaySuccessor),
            (Some(11), false, grace, RefreshDecision::ReuseDetected),
            (Some(3), true, grace, RefreshDecision::ReuseDetected),
            (Some(0), false, Duration::zero(), RefreshDecision::ReuseDetected),
            (None, false, Duration::zero(), RefreshDecision::Rotate),
        ];
        for (used, successor_used, grace, expected) in cases {
            let (token, now) = state(used, successor_used);
            assert_eq!(
                decide_refresh(token, now, grace),
                expected,
                "{used:?} {successor_used} {grace}"
            );
        }
    }

    #[test]
    fn expired_tokens_and_revoked_sessions_are_rejected_whatever_their_use() {
        let (mut token, now) = state(None, false);
        token.expires_at = now;
        assert_eq!(
            decide_refresh(token, now, Duration::seconds(10)),
            RefreshDecision::Reject
        );
        let (mut token, now) = state(Some(1), false);
        token.session_active = false;
        assert_eq!(
            decide_refresh(token, now, Duration::seconds(10)),
            RefreshDecision::Reject
        );
    }
}
