//! Accounts, sessions and the storage they need, as the authentication service sees them.
//!
//! Every mutating method takes the [`AuditEntry`] that describes it: implementations write the
//! change and the entry in one transaction, so no change goes unaudited and no entry outlives
//! a rolled-back change.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::federation::RoleOverrides;
use crate::identity::EmailAddress;
use crate::repository::RepositoryError;
use crate::rules::{RuleError, RuleStoreError};
use crate::session::LoginThrottlePolicy;

/// A user account as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    pub id: Uuid,
    pub email: String,
    pub pending_email: Option<String>,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub password_hash: Option<String>,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    pub status: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// An account that may sign in.
pub const STATUS_ACTIVE: &str = "active";
/// An account an administrator locked: sign-in refused, sessions ended, until unlocked.
pub const STATUS_LOCKED: &str = "locked";

impl UserRecord {
    pub fn is_active(&self) -> bool {
        self.status == STATUS_ACTIVE
    }

    pub fn is_locked(&self) -> bool {
        self.status == STATUS_LOCKED
    }
}

/// How an administrator's user listing is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum UserSort {
    CreatedAt,
    Email,
    DisplayName,
    LastLoginAt,
}

impl UserSort {
    /// `createdAt` (the default), `email`, `displayName` or `lastLoginAt`.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "createdAt" => Self::CreatedAt,
            "email" => Self::Email,
            "displayName" => Self::DisplayName,
            "lastLoginAt" => Self::LastLoginAt,
            _ => return None,
        })
    }
}

/// Which accounts an administrator lists; each present field narrows the result. Erased
/// accounts are never listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserFilter {
    /// Part of the email or display name, case-insensitive.
    pub text: Option<String>,
    pub status: Option<String>,
    /// Holds this system role.
    pub role: Option<String>,
    /// Belongs to this organization.
    pub organization: Option<Uuid>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    pub last_login_from: Option<DateTime<Utc>>,
    pub last_login_to: Option<DateTime<Utc>>,
    /// Second-factor state.
    pub mfa: Option<MfaFilter>,
    pub sort: UserSort,
    pub descending: bool,
}

/// The admin user list's `mfa` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MfaFilter {
    /// Sign-in asks for a code.
    Enrolled,
    /// No second factor (pending enrollments count as none).
    Missing,
    /// An operator's exemption from admin MFA enforcement is in force.
    Exempt,
}

impl MfaFilter {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "enrolled" => Some(Self::Enrolled),
            "missing" => Some(Self::Missing),
            "exempt" => Some(Self::Exempt),
            _ => None,
        }
    }
}

impl Default for UserFilter {
    fn default() -> Self {
        Self {
            text: None,
            status: None,
            role: None,
            organization: None,
            created_from: None,
            created_to: None,
            last_login_from: None,
            last_login_to: None,
            mfa: None,
            sort: UserSort::CreatedAt,
            descending: true,
        }
    }
}

/// The statuses a listing filters by.
pub const LISTED_STATUSES: [&str; 2] = [STATUS_ACTIVE, STATUS_LOCKED];

/// One account of an administrator's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserListing {
    pub user: UserRecord,
    pub roles: Vec<String>,
    /// Organization and the role there.
    pub organizations: Vec<(Uuid, String)>,
    /// Failed sign-ins counted against the email now.
    pub failed_attempts: i32,
    /// Whether sign-in asks for a second factor.
    pub mfa_enrolled: bool,
}

/// What deciding an administrator's lock needs, read under the lock of every `super_admin`
/// grant: the target's status and whether it holds `super_admin`, and how many *other*
/// unlocked accounts hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSnapshot {
    pub status: String,
    pub is_super_admin: bool,
    pub other_active_super_admins: usize,
}

/// Whether `actor` may lock `target`: never themself, never the last unlocked `super_admin`
/// (someone must be able to unlock everyone else).
pub fn may_lock_user(actor: Uuid, target: Uuid, snapshot: &LockSnapshot) -> Result<(), RuleError> {
    if actor == target {
        return Err(RuleError::Conflict("you cannot lock your own account"));
    }
    if snapshot.is_super_admin && snapshot.other_active_super_admins == 0 {
        return Err(RuleError::Conflict("the last super_admin cannot be locked"));
    }
    Ok(())
}

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: EmailAddress,
    pub display_name: String,
    /// `None`: an invited account, which signs in once the invitation set a password.
    pub password_hash: Option<String>,
    /// A BCP 47 tag (checked): its mails come in that language where a translation exists.
    pub locale: Option<String>,
    /// Stored with the account, in its transaction: a registration either happened whole
    /// (account, verification mail, first session) or not at all, so its answer tells the truth.
    pub welcome: Option<Welcome>,
    /// A mail token and its mail (an operator's invitation or verification mail), stored in
    /// the account's transaction.
    pub mail: Option<(NewEmailToken, OutgoingMail)>,
}

/// What a self-registration stores with the account.
#[derive(Debug, Clone)]
pub struct Welcome {
    pub verification: NewEmailToken,
    pub mail: OutgoingMail,
    pub session: SessionRecord,
    pub refresh_token_hash: String,
    pub session_audit: AuditEntry,
}

/// A single-use mail token to store.
#[derive(Debug, Clone)]
pub struct NewEmailToken {
    pub purpose: EmailTokenPurpose,
    pub email: String,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// A mail for the outbox.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    pub recipient: String,
    pub subject: String,
    /// The plain-text part.
    pub body: String,
    /// The HTML part, when the template has one.
    pub html: Option<String>,
    /// The translation's locale (`de`), `None` for the default templates.
    pub language: Option<String>,
    /// A file sent with it (a scheduled report's CSV).
    pub attachment: Option<MailAttachment>,
    /// Where the recipient stops this kind of mail (`List-Unsubscribe`, one click).
    pub unsubscribe: Option<String>,
}

/// A file attached to a mail: its name, media type and (text) content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAttachment {
    pub name: String,
    pub content_type: String,
    pub body: String,
}

/// Profile fields to change; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    pub display_name: Option<String>,
    pub avatar_url: Option<Option<String>>,
    pub locale: Option<Option<String>>,
    pub timezone: Option<Option<String>>,
    /// A new address awaiting verification.
    pub pending_email: Option<Option<String>>,
}

/// Fields an operator changes on someone's account (`PATCH /api/admin/v1/users/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminUserChanges {
    pub display_name: Option<String>,
    /// A new address, in effect at once but unverified (a verification mail goes to it).
    pub email: Option<String>,
    pub locale: Option<Option<String>>,
    pub timezone: Option<Option<String>>,
}

impl AdminUserChanges {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A sign-in session; its refresh tokens form one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl SessionRecord {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// A stored refresh token with what rotation needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub id: Uuid,
    pub session_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub successor_used: bool,
}

/// Why a single-use email token exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTokenPurpose {
    VerifyEmail,
    ResetPassword,
    /// An operator created the account without a password: the link sets one (and confirms
    /// the address).
    Invitation,
}

impl EmailTokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            EmailTokenPurpose::VerifyEmail => "verify_email",
            EmailTokenPurpose::ResetPassword => "reset_password",
            EmailTokenPurpose::Invitation => "invitation",
        }
    }
}

/// A redeemed email token: whose, and for which address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedeemedEmailToken {
    pub user_id: Uuid,
    pub email: String,
}

/// A mail waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
    pub language: Option<String>,
    pub attachment: Option<MailAttachment>,
    pub unsubscribe: Option<String>,
    pub attempts: i32,
    /// When it was due, as read (the claim checks it is unchanged).
    pub next_attempt_at: DateTime<Utc>,
}

/// Whether a sign-in attempt may check the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptPermit {
    Granted,
    /// Locked; retry after this many seconds.
    Locked {
        retry_after_seconds: i64,
    },
    /// Not locked, but every allowed check is in progress right now; try again in a moment.
    Busy,
}

pub trait AccountStore {
    /// Creates the account; `Conflict` when the email is taken.
    fn create_user(
        &self,
        user: NewUser,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<UserRecord, RepositoryError>> + Send;
    fn find_user(&self, id: Uuid)
    -> impl Future<Output = Result<Option<UserRecord>, RepositoryError>> + Send;
    fn find_user_by_email(
        &self,
        email: &EmailAddress,
    ) -> impl Future<Output = Result<Option<UserRecord>, RepositoryError>> + Send;
    /// Applies profile changes when `expected_version` (if given) is current.
    fn update_profile(
        &self,
        id: Uuid,
        changes: ProfileChanges,
        expected_version: Option<i32>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<UserRecord, RepositoryError>> + Send;
    /// An operator's change of an active or locked account when `expected_version` (if given)
    /// is current; a new address is stored unverified and `mail` (its verification) is queued
    /// in the same transaction. `Conflict` when the address is taken.
    fn admin_update_user(
        &self,
        id: Uuid,
        changes: AdminUserChanges,
        expected_version: Option<i32>,
        mail: Option<(NewEmailToken, OutgoingMail)>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<UserRecord, RepositoryError>> + Send;
    /// Sets a new password hash, remembers it in the history, and revokes every session of the
    /// user except `keep_session`.
    fn change_password(
        &self,
        id: Uuid,
        new_hash: String,
        keep_session: Option<Uuid>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    /// The hashes of the user's most recent passwords, newest first.
    fn recent_password_hashes(
        &self,
        id: Uuid,
        count: usize,
    ) -> impl Future<Output = Result<Vec<String>, RepositoryError>> + Send;
    /// Replaces a hash made with outdated parameters (no audit: nothing the user changed).
    fn upgrade_password_hash(
        &self,
        id: Uuid,
        new_hash: String,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    fn mark_email_verified(
        &self,
        id: Uuid,
        email: &str,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<UserRecord, RepositoryError>> + Send;
    fn system_roles(&self, id: Uuid) -> impl Future<Output = Result<Vec<String>, RepositoryError>> + Send;
    fn grant_system_role(
        &self,
        id: Uuid,
        role: &str,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    /// [`create_user`](Self::create_user) granting system roles in the account's own
    /// transaction: `decide` sees the new account's (empty) roles and the custom roles read
    /// under share locks, as in `change_system_roles`, so a role deleted or changed meanwhile is
    /// decided on as it is now; a refusal creates nothing.
    fn create_user_with_roles<F, A>(
        &self,
        user: NewUser,
        audit: &AuditEntry,
        decide: F,
        role_audit: A,
    ) -> impl Future<Output = Result<UserRecord, RuleStoreError>> + Send
    where
        F: FnOnce(&crate::rbac::RoleSnapshot) -> Result<crate::rbac::RoleChange, RuleError> + Send,
        A: Fn(Uuid, &str) -> AuditEntry + Send + Sync;
    /// Sets `id`'s system roles to what `decide` answers on a [`crate::rbac::RoleSnapshot`] read
    /// while every `super_admin` grant is locked (so two concurrent demotions cannot remove the
    /// last super_admin); one audit entry per grant or revocation, built by `audit` (role,
    /// granted). `NotFound` for unknown or erased accounts. Answers the roles as stored.
    fn change_system_roles<F, A>(
        &self,
        id: Uuid,
        decide: F,
        audit: A,
    ) -> impl Future<Output = Result<Vec<String>, RuleStoreError>> + Send
    where
        F: FnOnce(&crate::rbac::RoleSnapshot) -> Result<crate::rbac::RoleChange, RuleError> + Send,
        A: Fn(&str, bool) -> AuditEntry + Send + Sync;
    /// Accounts matching `filter`, one page, and how many match in all.
    fn list_users(
        &self,
        filter: &UserFilter,
        page: crate::PageRequest,
    ) -> impl Future<Output = Result<(Vec<UserListing>, u64), RepositoryError>> + Send;
    /// Locks (`locked: true`: status `locked`, every session revoked) or unlocks (status
    /// `active`, the sign-in throttle for the email cleared) an account. A lock is decided by
    /// `decide` on a [`LockSnapshot`] read while every `super_admin` grant is locked, so two
    /// concurrent locks cannot take the last two super_admins. `NotFound` for unknown or
    /// erased accounts. Answers the account as stored.
    fn set_user_locked<F>(
        &self,
        id: Uuid,
        locked: bool,
        expected_version: Option<i32>,
        decide: F,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<UserRecord, RuleStoreError>> + Send
    where
        F: FnOnce(&LockSnapshot) -> Result<(), RuleError> + Send;
    /// GDPR erasure: personal data removed or anonymised, sessions and tokens deleted, the
    /// audit trail kept. `Conflict` for the last unlocked `super_admin` (decided while every
    /// `super_admin` grant is locked).
    fn erase_user(
        &self,
        id: Uuid,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    /// Everything stored about the user, for the GDPR export.
    fn export_user(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<serde_json::Value, RepositoryError>> + Send;
}

pub trait SessionStore {
    /// Opens a session with its first refresh token and records the sign-in.
    fn open_session(
        &self,
        session: SessionRecord,
        refresh_token_hash: String,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    fn find_session(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<SessionRecord>, RepositoryError>> + Send;
    fn active_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<SessionRecord>, RepositoryError>> + Send;
    /// Revokes every live session of `user_id` (an administrator's act); answers how many.
    fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        reason: &str,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<u64, RepositoryError>> + Send;
    /// Revokes one session of `user_id`; false when there is no such live session.
    fn revoke_session(
        &self,
        id: Uuid,
        user_id: Uuid,
        reason: &str,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
    fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> impl Future<Output = Result<Option<RefreshTokenRecord>, RepositoryError>> + Send;
    /// Atomically marks the token used and stores its successor; false when another request
    /// marked it first (the caller then re-reads and decides again).
    fn rotate_refresh_token(
        &self,
        token: &RefreshTokenRecord,
        successor_hash: String,
        successor_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
    fn touch_session(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
}

pub trait LoginThrottleStore {
    /// Atomically reserves one password check for `email`, or reports the lock.
    fn reserve_attempt(
        &self,
        email: &str,
        policy: LoginThrottlePolicy,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<AttemptPermit, RepositoryError>> + Send;
    /// After a wrong password: releases the reserved check as a failure and locks the address
    /// once its failures are used up. True when this call locked it.
    fn record_failure(
        &self,
        email: &str,
        policy: LoginThrottlePolicy,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
    /// After a correct password: releases the reserved check and forgets the failures.
    fn record_success(&self, email: &str) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    /// After a correct password of an account that still owes its second factor: releases
    /// the reserved check and keeps the failures (only the completed sign-in forgets them).
    fn release_attempt(&self, email: &str) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    /// Forgets everything about the address (after a password reset).
    fn clear(&self, email: &str) -> impl Future<Output = Result<(), RepositoryError>> + Send;
}

pub trait EmailTokenStore {
    /// Stores a single-use token, invalidating earlier unused ones of the same purpose —
    /// unless `cap` (`(max, since)`) is reached: `max` tokens of this purpose issued to the user
    /// since `since`. Decided under the user's row lock, so concurrent requests cannot exceed
    /// it. Answers whether the token was stored.
    fn issue_email_token(
        &self,
        user_id: Uuid,
        purpose: EmailTokenPurpose,
        email: &str,
        token_hash: String,
        expires_at: DateTime<Utc>,
        cap: Option<(u64, DateTime<Utc>)>,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
    /// The token's account and address if it is unused and unexpired, without spending it
    /// (to check what depends on the account before [`redeem_email_token`](Self::redeem_email_token)).
    fn peek_email_token(
        &self,
        purpose: EmailTokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<RedeemedEmailToken>, RepositoryError>> + Send;
    /// Marks the token used if it is unused and unexpired; `None` otherwise. Atomic: of two
    /// concurrent redemptions one wins.
    fn redeem_email_token(
        &self,
        purpose: EmailTokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<RedeemedEmailToken>, RepositoryError>> + Send;
}

/// The mail outbox. Several instances may read it at once: a sender claims each due mail just
/// before sending it ([`Outbox::claim_email`]) and records the outcome under that claim, so a
/// mail is sent by one of them.
pub trait Outbox {
    fn enqueue_email(&self, mail: &OutgoingMail) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    /// Pending mail due at `now`, oldest first (not claimed: see [`Outbox::claim_email`]).
    fn due_emails(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<OutgoingEmail>, RepositoryError>> + Send;
    /// Claims `mail` for one attempt if it is still as it was read: answers the claim (to
    /// record the outcome with), or `None` when another sender has it.
    fn claim_email(
        &self,
        mail: &OutgoingEmail,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<QueueClaim>, RepositoryError>> + Send;
    /// Records a delivery; `false` when the claim had lapsed and another sender took the mail.
    fn mark_sent(
        &self,
        claim: &QueueClaim,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
    /// Schedules a retry (or gives up after the last attempt), under the claim.
    fn mark_failed(
        &self,
        claim: &QueueClaim,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
}

/// A sender's hold on one queue row (a mail, a push): until `until`, other senders skip it;
/// the outcome is recorded only while the row is still held by this claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueClaim {
    pub id: Uuid,
    pub until: DateTime<Utc>,
}

/// A new account created by a federated sign-in (email verified by the provider, no password).
#[derive(Debug, Clone)]
pub struct NewFederatedUser {
    pub email: EmailAddress,
    pub display_name: String,
    pub provider: String,
    pub subject: String,
}

pub trait FederationStore {
    /// The user linked to a provider account.
    fn linked_user(
        &self,
        provider: &str,
        subject: &str,
    ) -> impl Future<Output = Result<Option<Uuid>, RepositoryError>> + Send;
    fn create_federated_user(
        &self,
        user: NewFederatedUser,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<UserRecord, RepositoryError>> + Send;
    /// Links a provider account; `Conflict` when it is linked to someone (else) already.
    fn link_account(
        &self,
        user_id: Uuid,
        provider: &str,
        subject: &str,
        email: Option<&str>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    /// Providers linked to the user.
    fn linked_providers(
        &self,
        user_id: Uuid,
    ) -> impl Future<Output = Result<Vec<String>, RepositoryError>> + Send;
    fn unlink_account(
        &self,
        user_id: Uuid,
        provider: &str,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
    /// Records a nonce as used; false when it was used before (a replay).
    fn consume_nonce(
        &self,
        provider: &str,
        nonce_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
    fn role_overrides(
        &self,
        user_id: Uuid,
    ) -> impl Future<Output = Result<Option<RoleOverrides>, RepositoryError>> + Send;
    fn set_role_overrides(
        &self,
        user_id: Uuid,
        overrides: Option<&RoleOverrides>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    /// Applies a role synchronisation; no audit entry when nothing changes.
    fn apply_role_sync(
        &self,
        user_id: Uuid,
        grant: &[String],
        revoke: &[String],
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
}

/// A personal access token as its owner sees it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<String>,
}

pub trait PersonalTokenStore {
    fn create_personal_token(
        &self,
        token: &PersonalToken,
        secret_hash: String,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), crate::RuleStoreError>> + Send;
    /// The user's tokens that are neither revoked nor expired, newest first.
    fn personal_tokens(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<PersonalToken>, RepositoryError>> + Send;
    fn revoke_personal_token(
        &self,
        user_id: Uuid,
        id: Uuid,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
    /// The live token with this secret hash, marked as used now from `ip`.
    fn use_personal_token(
        &self,
        secret_hash: &str,
        now: DateTime<Utc>,
        ip: Option<String>,
    ) -> impl Future<Output = Result<Option<PersonalToken>, RepositoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(is_super_admin: bool, others: usize) -> LockSnapshot {
        LockSnapshot {
            status: STATUS_ACTIVE.to_owned(),
            is_super_admin,
            other_active_super_admins: others,
        }
    }

    #[test]
    fn nobody_locks_themself_or_the_last_super_admin() {
        let (admin, target) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(may_lock_user(admin, target, &snapshot(false, 0)), Ok(()));
        assert!(may_lock_user(admin, admin, &snapshot(false, 3)).is_err());
        assert!(may_lock_user(admin, target, &snapshot(true, 0)).is_err());
        assert_eq!(may_lock_user(admin, target, &snapshot(true, 1)), Ok(()));
    }
}
