//! User administration: locking and unlocking accounts, and their sessions. Each act is
//! audited as the administrator's, with the status before and after.

use serde_json::json;
use std::collections::BTreeSet;
use steward_domain::PageRequest;

use steward_domain::accounts::{SessionRecord, UserFilter, UserListing, UserRecord, may_lock_user};
use steward_domain::federation::RoleOverrides;
use steward_domain::mfa::{MAX_EXEMPTION_REASON_CHARS, MfaExemption};
use steward_domain::rbac::RoleSnapshot;
use steward_domain::{Actor, AuditAction, AuditEntry, RepositoryError, RequestOrigin, RuleStoreError};
use uuid::Uuid;

use crate::error::AppError;
use crate::principal::Principal;
use crate::steward::{Steward, Store};

/// The longest lock reason kept.
pub const MAX_REASON_CHARS: usize = 500;

/// Everything an operator sees about one account.
#[derive(Debug, Clone)]
pub struct UserDetail {
    pub user: UserRecord,
    pub roles: Vec<String>,
    /// Organization, name and the role there (the first 100).
    pub organizations: Vec<(Uuid, String, String)>,
    /// Group, name and the role there (the first 100).
    pub groups: Vec<(Uuid, String, String)>,
    pub live_sessions: usize,
    pub devices: usize,
    pub personal_tokens: usize,
    pub role_overrides: Option<RoleOverrides>,
    /// Whether sign-in asks for a second factor.
    pub mfa_enrolled: bool,
    /// An exemption from admin MFA enforcement, when one was set (expired ones too).
    pub mfa_exemption: Option<MfaExemption>,
}

/// A change of someone's system roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleRequest {
    /// Exactly these roles.
    Exactly(Vec<String>),
    Add(String),
    Remove(String),
}

pub struct UserAdminService<'a, S> {
    steward: &'a Steward<S>,
}

fn audit(admin: Uuid, action: &'static str, resource: &str, id: Uuid, origin: &RequestOrigin) -> AuditEntry {
    AuditEntry::new(Actor::admin(admin), AuditAction::known(action), resource)
        .resource_id(id)
        .origin(origin.clone())
}

impl<'a, S: Store> UserAdminService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    async fn existing(&self, user: Uuid) -> Result<UserRecord, AppError> {
        self.steward
            .store
            .find_user(user)
            .await?
            .ok_or_else(|| AppError::not_found("no such user"))
    }

    /// Refuses (403) acting on an account whose system roles the operator could not grant
    /// themself: nobody locks, erases or re-addresses an account more powerful than their own
    /// (a user_admin taking over a super_admin by changing its address, say).
    pub async fn ensure_power_over(&self, admin: &Principal, user: Uuid) -> Result<(), AppError> {
        let roles = self.steward.store.system_roles(user).await?;
        if roles.is_empty() {
            return Ok(());
        }
        let mut held = admin.roles.clone();
        held.extend(roles.iter().cloned());
        let catalog = self.steward.auth.catalog_for(&held).await?;
        if roles.iter().all(|role| catalog.may_grant(&admin.roles, role)) {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "this account holds a role you could not grant: only someone at least as powerful may change it",
            ))
        }
    }

    /// One account with its roles, organizations, groups, and how many live sessions, devices
    /// and personal access tokens it has. Erased accounts are `NotFound`.
    pub async fn detail(&self, user: Uuid) -> Result<UserDetail, AppError> {
        let record = self.existing(user).await?;
        if record.status == "deleted" {
            return Err(AppError::not_found("no such user"));
        }
        let first_hundred = PageRequest::parse(Some(1), Some(100))?;
        let store = &self.steward.store;
        let roles = store.system_roles(user).await?;
        let mut organizations = Vec::new();
        for organization in store.organizations(Some(user), first_hundred).await?.0 {
            let role = store.org_role(organization.id, user).await?;
            organizations.push((
                organization.id,
                organization.name,
                role.map(|role| role.as_str().to_owned()).unwrap_or_default(),
            ));
        }
        let groups = store
            .groups_of(user, first_hundred)
            .await?
            .0
            .into_iter()
            .map(|summary| {
                (
                    summary.group.id,
                    summary.group.name,
                    summary.my_role.as_str().to_owned(),
                )
            })
            .collect();
        let now = chrono::Utc::now();
        Ok(UserDetail {
            roles,
            organizations,
            groups,
            live_sessions: store.active_sessions(user, now).await?.len(),
            devices: store.devices_owned_by(&[user]).await?.len(),
            personal_tokens: store.personal_tokens(user, now).await?.len(),
            role_overrides: store.role_overrides(user).await?,
            mfa_enrolled: store
                .mfa_enrollment(user)
                .await?
                .is_some_and(|enrollment| enrollment.is_active()),
            mfa_exemption: store.admin_mfa_facts(user).await?.exemption,
            user: record,
        })
    }

    /// Accounts matching `filter`, one page, with their roles, organizations and failed
    /// sign-ins, and how many match in all.
    pub async fn list(
        &self,
        filter: &UserFilter,
        page: PageRequest,
    ) -> Result<(Vec<UserListing>, u64), AppError> {
        Ok(self.steward.store.list_users(filter, page).await?)
    }

    /// Changes `user`'s system roles as `admin` (their roles loaded) asks: to exactly a set,
    /// or by adding or removing one role. Decided on the roles read under the lock of every
    /// super_admin grant (`RoleCatalog::decide_role_change`); one audit entry per grant
    /// (`admin.role_granted`) or revocation (`admin.role_revoked`). Answers the roles now.
    pub async fn change_roles(
        &self,
        admin: &Principal,
        user: Uuid,
        request: RoleRequest,
        origin: &RequestOrigin,
    ) -> Result<Vec<String>, AppError> {
        let normalise = |role: &str| role.trim().to_lowercase();
        let catalog = self.steward.auth.roles().clone();
        let held = admin.roles.clone();
        let decide = move |snapshot: &RoleSnapshot| {
            let mut wanted: BTreeSet<String> = snapshot.current.iter().cloned().collect();
            match &request {
                RoleRequest::Exactly(roles) => wanted = roles.iter().map(|r| normalise(r)).collect(),
                RoleRequest::Add(role) => {
                    wanted.insert(normalise(role));
                }
                RoleRequest::Remove(role) => {
                    wanted.remove(&normalise(role));
                }
            }
            catalog.decide_role_change(&held, snapshot, &wanted)
        };
        let actor = admin.user;
        let origin = origin.clone();
        let audit = move |role: &str, granted: bool| {
            let action = if granted {
                "admin.role_granted"
            } else {
                "admin.role_revoked"
            };
            AuditEntry::new(Actor::admin(actor), AuditAction::known(action), "user")
                .resource_id(user)
                .change(None, Some(json!({"role": role})))
                .origin(origin.clone())
        };
        let roles = self
            .steward
            .store
            .change_system_roles(user, decide, audit)
            .await?;
        Ok(roles)
    }

    /// Creates an account as `admin` (their roles loaded): with a password, or else with an
    /// invitation mail (`AuthService::admin_create_user`), then grants `roles` under the same
    /// rules as `change_roles`. Roles are checked before the account exists, so a refusal
    /// creates nothing.
    pub async fn create(
        &self,
        admin: &Principal,
        account: crate::auth::AdminNewAccount,
        roles: Vec<String>,
        origin: &RequestOrigin,
    ) -> Result<UserDetail, AppError> {
        let wanted: BTreeSet<String> = roles.iter().map(|role| role.trim().to_lowercase()).collect();
        if !wanted.is_empty() {
            let catalog = self.steward.auth.full_catalog().await?;
            if wanted.iter().any(|role| !catalog.contains(role)) {
                return Err(AppError::invalid("roles", "names a role that does not exist"));
            }
            if wanted.iter().any(|role| !catalog.may_grant(&admin.roles, role)) {
                return Err(AppError::forbidden(
                    "you may only grant or revoke roles whose every permission you hold",
                ));
            }
        }
        if wanted.is_empty() {
            let user = self
                .steward
                .auth
                .admin_create_user(admin.user, account, origin)
                .await?;
            return self.detail(user.id).await;
        }
        // The grants are decided again in the account's own transaction, on the custom roles
        // as they are then: a role deleted or widened since the check above refuses the whole
        // creation rather than leaving an account without the roles asked for.
        let (account, entry) = self
            .steward
            .auth
            .prepare_admin_account(admin.user, account, origin)
            .await?;
        let catalog = self.steward.auth.roles().clone();
        let held = admin.roles.clone();
        let actor = admin.user;
        let origin = origin.clone();
        let user = self
            .steward
            .store
            .create_user_with_roles(
                account,
                &entry,
                move |snapshot| catalog.decide_role_change(&held, snapshot, &wanted),
                move |user, role| {
                    AuditEntry::new(
                        Actor::admin(actor),
                        AuditAction::known("admin.role_granted"),
                        "user",
                    )
                    .resource_id(user)
                    .change(None, Some(json!({"role": role})))
                    .origin(origin.clone())
                },
            )
            .await
            .map_err(|error| match error {
                RuleStoreError::Repository(RepositoryError::Conflict(_)) => {
                    AppError::from(crate::auth::AuthError::EmailTaken)
                }
                other => other.into(),
            })?;
        self.detail(user.id).await
    }

    /// Changes an account as `admin` (roles loaded): fields through
    /// `AuthService::admin_update_user` (guarded by the version), then `status` (`active` or
    /// `locked`) through `unlock`/`lock`, which need `users:unlock`/`users:lock` as well.
    /// Answers the account as `detail` shows it.
    pub async fn update(
        &self,
        admin: &Principal,
        user: Uuid,
        update: crate::auth::AdminProfileUpdate,
        status: Option<&str>,
        origin: &RequestOrigin,
    ) -> Result<UserDetail, AppError> {
        use steward_domain::accounts::{STATUS_ACTIVE, STATUS_LOCKED};
        use steward_domain::rbac::Permission;
        let wanted = match status {
            None => None,
            Some(STATUS_ACTIVE) => Some(false),
            Some(STATUS_LOCKED) => Some(true),
            Some(_) => return Err(AppError::invalid("status", "must be active or locked")),
        };
        if !update.changes_fields() && wanted.is_none() {
            return Err(AppError::validation(
                "name at least one of displayName, email, locale, timezone or status",
            ));
        }
        let current = self.existing(user).await?;
        if !(current.is_active() || current.is_locked()) {
            return Err(AppError::not_found("no such user"));
        }
        let locking = wanted.filter(|lock| *lock != current.is_locked());
        match locking {
            Some(true) if !admin.allows(Permission::UsersLock) => {
                return Err(AppError::forbidden("locking an account needs users:lock"));
            }
            Some(false) if !admin.allows(Permission::UsersUnlock) => {
                return Err(AppError::forbidden("unlocking an account needs users:unlock"));
            }
            _ => {}
        }
        // With fields to change, the version guards their write (and the lock or unlock that
        // follows needs none); with the status alone, it guards the lock or unlock.
        let status_version = if update.changes_fields() {
            None
        } else {
            update.expected_version
        };
        if locking.is_none() && status_version.is_some_and(|expected| expected != current.version) {
            return Err(RepositoryError::VersionConflict.into());
        }
        if update.changes_fields() {
            if admin.user != user {
                self.ensure_power_over(admin, user).await?;
            }
            self.steward
                .auth
                .admin_update_user(admin.user, user, update, origin)
                .await?;
        }
        match locking {
            Some(true) => {
                self.lock_at_version(admin, user, None, status_version, origin)
                    .await?;
            }
            Some(false) => {
                self.unlock_at_version(admin.user, user, status_version, origin)
                    .await?;
            }
            None => {}
        }
        self.detail(user).await
    }

    /// Erases an account as self-service deletion does (personal data removed, sessions and
    /// tokens deleted, groups passed on, devices unlinked, the audit trail kept). Never the
    /// caller's own account (that is `DELETE /api/v1/auth/me`), never the last unlocked
    /// super_admin.
    pub async fn delete(
        &self,
        admin: &Principal,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        if admin.user == user {
            return Err(AppError::conflict(
                "delete your own account with DELETE /api/v1/auth/me",
            ));
        }
        let before = self.existing(user).await?;
        self.ensure_power_over(admin, user).await?;
        let admin = admin.user;
        let entry = audit(admin, "admin.user_deleted", "user", user, origin).change(
            Some(json!({"status": before.status})),
            Some(json!({"status": "deleted"})),
        );
        self.steward
            .store
            .erase_user(user, &entry)
            .await
            .map_err(|error| match error {
                RepositoryError::Conflict(_) => AppError::conflict(
                    "the last super_admin cannot be deleted: make someone else super_admin first",
                ),
                other => other.into(),
            })?;
        self.steward.auth.forget_user(user);
        Ok(())
    }

    /// Locks an account: sign-in refused, every session ended (at once here, within the
    /// session cache's bound elsewhere), personal access tokens refused. Never the caller's own
    /// account, never the last unlocked super_admin.
    pub async fn lock(
        &self,
        admin: &Principal,
        user: Uuid,
        reason: Option<&str>,
        origin: &RequestOrigin,
    ) -> Result<UserRecord, AppError> {
        self.lock_at_version(admin, user, reason, None, origin).await
    }

    /// [`lock`](Self::lock) if the account's version is still `expected_version` (when given).
    async fn lock_at_version(
        &self,
        admin: &Principal,
        user: Uuid,
        reason: Option<&str>,
        expected_version: Option<i32>,
        origin: &RequestOrigin,
    ) -> Result<UserRecord, AppError> {
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        if reason.is_some_and(|r| r.chars().count() > MAX_REASON_CHARS) {
            return Err(AppError::invalid("reason", "must be at most 500 characters"));
        }
        let before = self.existing(user).await?;
        if admin.user != user {
            self.ensure_power_over(admin, user).await?;
        }
        let admin = admin.user;
        let entry = audit(admin, "admin.user_locked", "user", user, origin).change(
            Some(json!({"status": before.status})),
            Some(json!({"status": "locked", "reason": reason})),
        );
        let locked = self
            .steward
            .store
            .set_user_locked(
                user,
                true,
                expected_version,
                |snapshot| may_lock_user(admin, user, snapshot),
                &entry,
            )
            .await?;
        self.steward.auth.forget_user(user);
        Ok(locked)
    }

    /// Unlocks an account locked by an administrator, and clears an automatic sign-in lockout
    /// and its failure counter.
    pub async fn unlock(
        &self,
        admin: Uuid,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<UserRecord, AppError> {
        self.unlock_at_version(admin, user, None, origin).await
    }

    /// [`unlock`](Self::unlock) if the account's version is still `expected_version` (when
    /// given).
    async fn unlock_at_version(
        &self,
        admin: Uuid,
        user: Uuid,
        expected_version: Option<i32>,
        origin: &RequestOrigin,
    ) -> Result<UserRecord, AppError> {
        let before = self.existing(user).await?;
        let entry = audit(admin, "admin.user_unlocked", "user", user, origin).change(
            Some(json!({"status": before.status})),
            Some(json!({"status": "active"})),
        );
        let unlocked = self
            .steward
            .store
            .set_user_locked(user, false, expected_version, |_| Ok(()), &entry)
            .await?;
        self.steward.auth.forget_user(user);
        Ok(unlocked)
    }

    /// The account's live sessions.
    pub async fn sessions(&self, user: Uuid) -> Result<Vec<SessionRecord>, AppError> {
        self.existing(user).await?;
        Ok(self
            .steward
            .store
            .active_sessions(user, chrono::Utc::now())
            .await?)
    }

    /// Ends one session of the account.
    pub async fn revoke_session(
        &self,
        admin: Uuid,
        user: Uuid,
        session: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let entry = audit(admin, "admin.session_revoked", "session", session, origin)
            .change(None, Some(json!({"userId": user})));
        if !self
            .steward
            .store
            .revoke_session(session, user, "revoked_by_admin", &entry)
            .await?
        {
            return Err(AppError::not_found("no such live session"));
        }
        self.steward.auth.forget_user(user);
        Ok(())
    }

    /// Exempts an account from admin MFA enforcement (super_admin only), until `expires_at`
    /// when given. Setting it again replaces it.
    pub async fn set_mfa_exemption(
        &self,
        admin: &Principal,
        user: Uuid,
        reason: &str,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        origin: &RequestOrigin,
    ) -> Result<MfaExemption, AppError> {
        if !admin.roles.iter().any(|role| role == "super_admin") {
            return Err(AppError::forbidden(
                "only a super_admin exempts accounts from MFA",
            ));
        }
        if admin.user == user {
            return Err(AppError::conflict(
                "nobody exempts themself: another super_admin must set your exemption",
            ));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_EXEMPTION_REASON_CHARS {
            return Err(AppError::invalid("reason", "must be 1 to 500 characters"));
        }
        if reason.chars().any(char::is_control) {
            return Err(AppError::invalid("reason", "must not contain control characters"));
        }
        let now = chrono::Utc::now();
        if expires_at.is_some_and(|at| at <= now) {
            return Err(AppError::invalid("expiresAt", "must be in the future"));
        }
        let target = self.existing(user).await?;
        if target.status == "deleted" {
            return Err(AppError::not_found("no such user"));
        }
        let exemption = MfaExemption {
            user_id: user,
            reason: reason.to_owned(),
            expires_at,
            created_by: Some(admin.user),
            created_at: now,
        };
        let entry = audit(admin.user, "admin.mfa_exemption_set", "user", user, origin).change(
            None,
            Some(json!({"reason": exemption.reason, "expiresAt": exemption.expires_at})),
        );
        self.steward.store.set_mfa_exemption(&exemption, &entry).await?;
        Ok(exemption)
    }

    /// Ends an account's exemption (super_admin only); `NotFound` when it had none.
    pub async fn remove_mfa_exemption(
        &self,
        admin: &Principal,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        if !admin.roles.iter().any(|role| role == "super_admin") {
            return Err(AppError::forbidden(
                "only a super_admin exempts accounts from MFA",
            ));
        }
        self.existing(user).await?;
        let entry = audit(admin.user, "admin.mfa_exemption_removed", "user", user, origin);
        if self.steward.store.remove_mfa_exemption(user, &entry).await? {
            Ok(())
        } else {
            Err(AppError::not_found("this account has no MFA exemption"))
        }
    }

    /// Removes another account's second factor (the holder lost the device and the recovery
    /// codes) and ends its sessions; it signs in with the password alone and enrols again.
    /// Nobody resets an account more powerful than their own.
    pub async fn reset_mfa(
        &self,
        admin: &Principal,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let target = self.existing(user).await?;
        if target.status == "deleted" {
            return Err(AppError::not_found("no such user"));
        }
        if admin.user == user {
            return Err(AppError::conflict(
                "remove your own second factor with DELETE /api/v1/auth/mfa/totp (password and code)",
            ));
        }
        self.ensure_power_over(admin, user).await?;
        let enabled = self
            .steward
            .store
            .mfa_enrollment(user)
            .await?
            .is_some_and(|enrollment| enrollment.is_active());
        if !enabled {
            return Err(AppError::conflict("this account has no second factor"));
        }
        let entry = audit(admin.user, "admin.mfa_reset", "user", user, origin)
            .change(Some(json!({"mfa": "enabled"})), Some(json!({"mfa": null})));
        if !self.steward.store.remove_mfa(user, &entry).await? {
            return Err(AppError::conflict("this account has no second factor"));
        }
        let ended = audit(admin.user, "admin.sessions_revoked", "user", user, origin);
        self.steward
            .store
            .revoke_user_sessions(user, "mfa_reset", &ended)
            .await?;
        self.steward.auth.forget_user(user);
        self.steward
            .auth
            .mfa_notice(
                &target,
                "reset_by_administrator",
                "An administrator removed the second factor of your account: sign-in asks for the password alone.",
            )
            .await;
        Ok(())
    }

    /// Ends every session of the account; answers how many.
    pub async fn revoke_sessions(
        &self,
        admin: Uuid,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<u64, AppError> {
        self.existing(user).await?;
        let entry = audit(admin, "admin.sessions_revoked", "user", user, origin);
        let revoked = self
            .steward
            .store
            .revoke_user_sessions(user, "revoked_by_admin", &entry)
            .await?;
        self.steward.auth.forget_user(user);
        Ok(revoked)
    }
}
