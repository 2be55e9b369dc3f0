//! Second factor: an account's TOTP enrollment (pending until a code proves it), its
//! single-use recovery codes, and the short-lived challenge between a correct password and a
//! correct code at sign-in.

use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::repository::RepositoryError;

/// How long the `mfaToken` of a sign-in waiting for its second factor lives.
pub const CHALLENGE_MINUTES: i64 = 5;

/// An account's TOTP secret (sealed: only the application layer can open it) and how far it
/// has been used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaEnrollment {
    pub user_id: Uuid,
    pub secret_sealed: String,
    /// When a code first proved the secret; `None` while the enrollment is pending.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The latest TOTP step accepted: a code of this step or an earlier one is not accepted
    /// again.
    pub last_used_step: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl MfaEnrollment {
    /// Whether sign-in asks for the second factor.
    pub fn is_active(&self) -> bool {
        self.confirmed_at.is_some()
    }
}

/// A sign-in that passed its password and waits for a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    pub id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

impl MfaChallenge {
    pub fn new(user_id: Uuid, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            user_id,
            expires_at: now + Duration::minutes(CHALLENGE_MINUTES),
        }
    }
}

/// An account's second-factor state, for its owner and for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfaStatus {
    pub enabled: bool,
    pub pending: bool,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub recovery_codes_left: u64,
}

/// An operator's decision that an account with a system role may work without a second
/// factor (until `expires_at`, when given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaExemption {
    pub user_id: Uuid,
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl MfaExemption {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|until| until > now)
    }
}

/// The longest exemption reason kept.
pub const MAX_EXEMPTION_REASON_CHARS: usize = 500;

/// `STEWARD_ADMIN_MFA_REQUIRED` and its grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminMfaPolicy {
    pub required: bool,
    pub grace: Duration,
}

/// What the admin API needs to decide about an administrator's second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminMfaFacts {
    pub enrolled: bool,
    pub exemption: Option<MfaExemption>,
    /// When the account got the system role it has held longest.
    pub first_grant_at: Option<DateTime<Utc>>,
}

/// Whether an administrator may use the admin API as far as the second factor goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminMfaVerdict {
    /// Enforcement is off, the account has a second factor, holds no system role, or is
    /// exempt.
    Satisfied,
    /// Allowed until `deadline`; then refused.
    Grace { deadline: DateTime<Utc> },
    /// Refused (`403 MFA_REQUIRED`) until a second factor is enrolled.
    Required { deadline: DateTime<Utc> },
}

/// The pure rule of admin MFA enforcement: the grace period runs from the later of the role
/// grant and the moment enforcement was switched on.
pub fn admin_mfa_verdict(
    policy: AdminMfaPolicy,
    enforced_since: DateTime<Utc>,
    facts: &AdminMfaFacts,
    now: DateTime<Utc>,
) -> AdminMfaVerdict {
    if !policy.required || facts.enrolled {
        return AdminMfaVerdict::Satisfied;
    }
    let Some(granted) = facts.first_grant_at else {
        return AdminMfaVerdict::Satisfied;
    };
    if facts.exemption.as_ref().is_some_and(|e| e.is_active(now)) {
        return AdminMfaVerdict::Satisfied;
    }
    let deadline = granted.max(enforced_since) + policy.grace;
    if now < deadline {
        AdminMfaVerdict::Grace { deadline }
    } else {
        AdminMfaVerdict::Required { deadline }
    }
}

pub trait MfaStore {
    /// The account's enrollment, pending or confirmed.
    fn mfa_enrollment(
        &self,
        user_id: Uuid,
    ) -> impl Future<Output = Result<Option<MfaEnrollment>, RepositoryError>> + Send;
    /// Stores a new pending secret in place of any pending one; `Conflict` when a confirmed
    /// enrollment exists (it must be removed first).
    fn begin_mfa_enrollment(
        &self,
        user_id: Uuid,
        secret_sealed: String,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    /// Confirms the pending enrollment whose sealed secret is `secret_sealed` with a code of
    /// `step`, and stores the recovery codes' hashes, in one transaction. False when there is
    /// no such pending enrollment any more (confirmed or replaced meanwhile).
    fn confirm_mfa_enrollment(
        &self,
        user_id: Uuid,
        secret_sealed: &str,
        step: i64,
        recovery_code_hashes: Vec<String>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
    /// Records `step` as used when it is later than every step used before (one statement,
    /// so two requests with one code cannot both pass). False: the code was already used.
    fn claim_mfa_step(
        &self,
        user_id: Uuid,
        step: i64,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
    /// Marks the account's unused recovery code with this hash as used. False when there is
    /// none (wrong or already used).
    fn use_recovery_code(
        &self,
        user_id: Uuid,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
    /// Unused recovery codes left.
    fn recovery_codes_left(&self, user_id: Uuid)
    -> impl Future<Output = Result<u64, RepositoryError>> + Send;
    /// Replaces all the account's recovery codes.
    fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        code_hashes: Vec<String>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    /// Removes the enrollment, its recovery codes and open challenges. False when there was
    /// no enrollment.
    fn remove_mfa(
        &self,
        user_id: Uuid,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
    fn create_mfa_challenge(
        &self,
        challenge: &MfaChallenge,
        token_hash: String,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    /// The unused, unexpired challenge with this token hash.
    fn find_mfa_challenge(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<MfaChallenge>, RepositoryError>> + Send;
    /// The account's second-factor facts for the admin API's enforcement.
    fn admin_mfa_facts(
        &self,
        user_id: Uuid,
    ) -> impl Future<Output = Result<AdminMfaFacts, RepositoryError>> + Send;
    /// When enforcement was switched on: the stored moment, or `now` stored when there is
    /// none (the first instance to start with it on wins).
    fn admin_mfa_enforced_since(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<DateTime<Utc>, RepositoryError>> + Send;
    fn set_mfa_exemption(
        &self,
        exemption: &MfaExemption,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    /// False when the account had no exemption.
    fn remove_mfa_exemption(
        &self,
        user_id: Uuid,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
    /// Spends the challenge; false when another request spent it first or it expired.
    fn spend_mfa_challenge(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_confirmed_enrollment_asks_for_a_code() {
        let now = Utc::now();
        let mut enrollment = MfaEnrollment {
            user_id: Uuid::now_v7(),
            secret_sealed: "sealed".to_owned(),
            confirmed_at: None,
            last_used_step: None,
            created_at: now,
        };
        assert!(!enrollment.is_active());
        enrollment.confirmed_at = Some(now);
        assert!(enrollment.is_active());
    }

    fn facts(
        enrolled: bool,
        granted: Option<DateTime<Utc>>,
        exemption: Option<MfaExemption>,
    ) -> AdminMfaFacts {
        AdminMfaFacts {
            enrolled,
            exemption,
            first_grant_at: granted,
        }
    }

    #[test]
    fn the_grace_period_runs_from_the_later_of_grant_and_enforcement() {
        let now = Utc::now();
        let policy = AdminMfaPolicy {
            required: true,
            grace: Duration::hours(24),
        };
        let old_grant = Some(now - Duration::days(10));
        // Enforcement switched on an hour ago: 23 hours left for an old admin.
        let verdict = admin_mfa_verdict(
            policy,
            now - Duration::hours(1),
            &facts(false, old_grant, None),
            now,
        );
        assert_eq!(
            verdict,
            AdminMfaVerdict::Grace {
                deadline: now + Duration::hours(23)
            }
        );
        // On for two days: refused.
        let enforced = now - Duration::days(2);
        assert!(matches!(
            admin_mfa_verdict(policy, enforced, &facts(false, old_grant, None), now),
            AdminMfaVerdict::Required { .. }
        ));
        // A fresh grant gets its own grace.
        assert!(matches!(
            admin_mfa_verdict(
                policy,
                enforced,
                &facts(false, Some(now - Duration::hours(2)), None),
                now
            ),
            AdminMfaVerdict::Grace { .. }
        ));
        // Enrolled, no role, off: satisfied.
        assert_eq!(
            admin_mfa_verdict(policy, enforced, &facts(true, old_grant, None), now),
            AdminMfaVerdict::Satisfied
        );
        assert_eq!(
            admin_mfa_verdict(policy, enforced, &facts(false, None, None), now),
            AdminMfaVerdict::Satisfied
        );
        let off = AdminMfaPolicy {
            required: false,
            ..policy
        };
        assert_eq!(
            admin_mfa_verdict(off, enforced, &facts(false, old_grant, None), now),
            AdminMfaVerdict::Satisfied
        );
        // An exemption lifts it until it expires.
        let exemption = |expires_at| MfaExemption {
            user_id: Uuid::now_v7(),
            reason: "break-glass account".to_owned(),
            expires_at,
            created_by: None,
            created_at: now,
        };
        assert_eq!(
            admin_mfa_verdict(
                policy,
                enforced,
                &facts(false, old_grant, Some(exemption(None))),
                now
            ),
            AdminMfaVerdict::Satisfied
        );
        assert!(matches!(
            admin_mfa_verdict(
                policy,
                enforced,
                &facts(
                    false,
                    old_grant,
                    Some(exemption(Some(now - Duration::seconds(1))))
                ),
                now
            ),
            AdminMfaVerdict::Required { .. }
        ));
    }

    #[test]
    fn a_challenge_lives_five_minutes() {
        let now = Utc::now();
        let challenge = MfaChallenge::new(Uuid::now_v7(), now);
        assert_eq!(challenge.expires_at - now, Duration::minutes(5));
    }
}
