//! Federated sign-in (Google, Apple, a generic OIDC provider), provider links and the
//! IdP-group → system-role synchronisation.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{Duration, Utc};
use serde_json::json;
use steward_auth::hash_token;
use steward_auth::oidc::{IdTokenVerifier, IdentityClaims, UserInfoClient};
use steward_domain::accounts::{NewFederatedUser, UserRecord};
use steward_domain::federation::{GroupRoleMap, RoleOverrides, resolve_roles_for_groups, sync_roles};
use steward_domain::identity::{DisplayName, EmailAddress};
use steward_domain::{Actor, AuditAction, AuditEntry, RequestOrigin};
use uuid::Uuid;

use super::error::AuthError;
use super::service::AuthService;
use crate::steward::Store;

/// The configured providers and the role mapping applied at federated sign-in.
#[derive(Default)]
pub struct Federation {
    pub providers: HashMap<String, Arc<IdTokenVerifier>>,
    pub group_roles: GroupRoleMap,
    pub default_roles: BTreeSet<String>,
    /// The OIDC provider's UserInfo endpoint, asked when an ID token lacks email, name or groups.
    pub userinfo: Option<UserInfoClient>,
    /// `STEWARD_USER_MGMT_CORE` off: an OIDC identity without an account gets none, and groups
    /// map to no roles; only accounts already linked sign in.
    pub provisioning_off: bool,
}

impl Federation {
    /// Roles the mapping manages: only these are revoked by synchronisation.
    fn managed_roles(&self) -> BTreeSet<String> {
        let mut roles = self.group_roles.roles();
        roles.extend(self.default_roles.iter().cloned());
        roles
    }

    fn maps_roles(&self) -> bool {
        !self.managed_roles().is_empty()
    }
}

/// A federated sign-in request.
pub struct FederatedSignIn {
    pub id_token: String,
    pub nonce: Option<String>,
    /// Apple sends the name only at the first sign-in, outside the token.
    pub name: Option<String>,
    /// The OIDC provider's access token, for UserInfo enrichment.
    pub access_token: Option<String>,
}

fn display_name_for(claims: &IdentityClaims, given: Option<&str>, email: &EmailAddress) -> String {
    given
        .or(claims.name.as_deref())
        .and_then(|name| DisplayName::parse(name).ok())
        .map(DisplayName::into_inner)
        .unwrap_or_else(|| email.as_str().split('@').next().unwrap_or("user").to_owned())
}

impl<S: Store> AuthService<S> {
    fn verifier(&self, provider: &str) -> Result<Arc<IdTokenVerifier>, AuthError> {
        self.federation()
            .providers
            .get(provider)
            .cloned()
            .ok_or(AuthError::UnknownProvider)
    }

    /// Verifies the ID token and spends its nonce, so a captured token cannot be replayed.
    async fn verified_identity(
        &self,
        provider: &str,
        id_token: &str,
        nonce: Option<&str>,
    ) -> Result<IdentityClaims, AuthError> {
        let claims = self
            .verifier(provider)?
            .verify(id_token, nonce)
            .await
            .map_err(AuthError::IdToken)?;
        if let Some(token_nonce) = claims.nonce.as_deref() {
            let fresh = self
                .store()
                .consume_nonce(
                    provider,
                    &hash_token(token_nonce),
                    Utc::now() + Duration::hours(24),
                )
                .await?;
            if !fresh {
                return Err(AuthError::IdToken(steward_auth::oidc::IdTokenError::Nonce));
            }
        }
        Ok(claims)
    }

    pub async fn federated_sign_in(
        &self,
        provider: &str,
        request: FederatedSignIn,
        origin: &RequestOrigin,
    ) -> Result<super::SignInOutcome, AuthError> {
        let mut claims = self
            .verified_identity(provider, &request.id_token, request.nonce.as_deref())
            .await?;
        if provider == "oidc"
            && claims.lacks_profile()
            && let (Some(userinfo), Some(access_token)) =
                (&self.federation().userinfo, request.access_token.as_deref())
        {
            let info = userinfo.fetch(access_token).await.map_err(AuthError::IdToken)?;
            claims.enrich(info).map_err(AuthError::IdToken)?;
        }
        let user = match self.store().linked_user(provider, &claims.sub).await? {
            Some(user_id) => self
                .store()
                .find_user(user_id)
                .await?
                .filter(UserRecord::is_active)
                .ok_or(AuthError::Unauthenticated)?,
            None if provider == "oidc" && self.federation().provisioning_off => {
                return Err(AuthError::ProvisioningOff);
            }
            None => match self
                .first_federated_sign_in(provider, &claims, request.name.as_deref(), origin)
                .await
            {
                Ok(user) => user,
                // A parallel first sign-in of the same identity (a double tap) created the
                // account first: this one signs in to it, with a session of its own.
                Err(AuthError::Repository(steward_domain::RepositoryError::Conflict(reason))) => {
                    let linked = self.store().linked_user(provider, &claims.sub).await?;
                    let Some(user_id) = linked else {
                        return Err(AuthError::Repository(steward_domain::RepositoryError::Conflict(
                            reason,
                        )));
                    };
                    self.store()
                        .find_user(user_id)
                        .await?
                        .filter(UserRecord::is_active)
                        .ok_or(AuthError::Unauthenticated)?
                }
                Err(error) => return Err(error),
            },
        };
        if provider == "oidc" && !self.federation().provisioning_off && self.federation().maps_roles() {
            self.synchronise_roles(user.id, &claims.groups, origin).await?;
        }
        if self.federated_needs_second_factor(user.id).await? {
            return self.mfa_challenge(user.id).await;
        }
        self.sign_in_user(user, origin)
            .await
            .map(|issued| super::SignInOutcome::Complete(Box::new(issued)))
    }

    async fn first_federated_sign_in(
        &self,
        provider: &str,
        claims: &IdentityClaims,
        name: Option<&str>,
        origin: &RequestOrigin,
    ) -> Result<UserRecord, AuthError> {
        let email = claims
            .email
            .as_deref()
            .and_then(|email| EmailAddress::parse(email).ok())
            .ok_or(AuthError::ProviderEmailUnverified)?;
        if claims.email_verified != Some(true) {
            return Err(AuthError::ProviderEmailUnverified);
        }
        match self.store().find_user_by_email(&email).await? {
            // Linking by email is safe only when we verified that mailbox ourselves; otherwise
            // whoever registered it first (perhaps an attacker) would get the provider account.
            // An account with a second factor is never linked by email alone: a provider sign-in
            // would then skip the code. Its owner signs in (password and code) and links.
            Some(existing)
                if existing.email_verified_at.is_some()
                    && existing.is_active()
                    && !self.federated_skips_second_factor(existing.id).await? =>
            {
                let audit = AuditEntry::new(
                    Actor::user(existing.id),
                    AuditAction::known("auth.provider_linked"),
                    "user",
                )
                .resource_id(existing.id)
                .change(None, Some(json!({"provider": provider})))
                .origin(origin.clone());
                self.store()
                    .link_account(existing.id, provider, &claims.sub, Some(email.as_str()), &audit)
                    .await?;
                Ok(existing)
            }
            Some(_) => Err(AuthError::LinkRequired),
            None => {
                let audit = AuditEntry::new(
                    Actor {
                        kind: steward_domain::ActorKind::User,
                        id: None,
                    },
                    AuditAction::known("auth.registered"),
                    "user",
                )
                .change(None, Some(json!({"email": email.as_str(), "provider": provider})))
                .origin(origin.clone());
                let user = NewFederatedUser {
                    display_name: display_name_for(claims, name, &email),
                    email,
                    provider: provider.to_owned(),
                    subject: claims.sub.clone(),
                };
                Ok(self.store().create_federated_user(user, &audit).await?)
            }
        }
    }

    /// Grants and revokes system roles so they match the identity's groups, within the
    /// operator's overrides.
    async fn synchronise_roles(
        &self,
        user: Uuid,
        groups: &[String],
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let federation = self.federation();
        let from_identity: BTreeSet<String> =
            resolve_roles_for_groups(groups, &federation.group_roles, &federation.default_roles)
                .into_iter()
                .filter(|role| self.roles().contains(role))
                .collect();
        let current: BTreeSet<String> = self.store().system_roles(user).await?.into_iter().collect();
        let overrides = self.store().role_overrides(user).await?.unwrap_or_default();
        let sync = sync_roles(&current, &from_identity, &federation.managed_roles(), &overrides);
        let grant: Vec<String> = sync.grant.into_iter().collect();
        let revoke: Vec<String> = sync.revoke.into_iter().collect();
        let audit = AuditEntry::new(Actor::system(), AuditAction::known("admin.roles_synced"), "user")
            .resource_id(user)
            .change(
                Some(json!({"roles": current})),
                Some(json!({"granted": grant, "revoked": revoke})),
            )
            .origin(origin.clone());
        Ok(self
            .store()
            .apply_role_sync(user, &grant, &revoke, &audit)
            .await?)
    }

    /// Links a provider account to `user`. An account with a second factor must show a code
    /// (`proof`) unless provider sign-ins ask for it too: a stolen session must not be able
    /// to add a way in that skips the code.
    pub async fn link_provider(
        &self,
        user: Uuid,
        provider: &str,
        id_token: &str,
        nonce: Option<&str>,
        proof: Option<super::MfaProof>,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let claims = self.verified_identity(provider, id_token, nonce).await?;
        if self.federated_skips_second_factor(user).await? {
            let proof = proof.ok_or(AuthError::Invalid {
                field: "code",
                message: "this account has a second factor: send a current code (or a recovery code)"
                    .to_owned(),
            })?;
            let record = self.current_user(user).await?;
            self.check_second_factor(&record, &proof, origin).await?;
        }
        match self.store().linked_user(provider, &claims.sub).await? {
            Some(owner) if owner == user => Ok(()),
            Some(_) => Err(AuthError::AlreadyLinked),
            None => {
                let audit = AuditEntry::new(
                    Actor::user(user),
                    AuditAction::known("auth.provider_linked"),
                    "user",
                )
                .resource_id(user)
                .change(None, Some(json!({"provider": provider})))
                .origin(origin.clone());
                self.store()
                    .link_account(user, provider, &claims.sub, claims.email.as_deref(), &audit)
                    .await
                    .map_err(|error| match error {
                        steward_domain::RepositoryError::Conflict(_) => AuthError::AlreadyLinked,
                        other => other.into(),
                    })
            }
        }
    }

    pub async fn unlink_provider(
        &self,
        user: Uuid,
        provider: &str,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let record = self.current_user(user).await?;
        let providers = self.store().linked_providers(user).await?;
        if !providers.iter().any(|p| p == provider) {
            return Err(AuthError::NotFound);
        }
        if record.password_hash.is_none() && providers.len() <= 1 {
            return Err(AuthError::LastSignInMethod);
        }
        let audit = AuditEntry::new(
            Actor::user(user),
            AuditAction::known("auth.provider_unlinked"),
            "user",
        )
        .resource_id(user)
        .change(Some(json!({"provider": provider})), None)
        .origin(origin.clone());
        if self.store().unlink_account(user, provider, &audit).await? {
            Ok(())
        } else {
            Err(AuthError::NotFound)
        }
    }

    pub async fn role_overrides(&self, user: Uuid) -> Result<(RoleOverrides, bool), AuthError> {
        self.current_user(user).await.map_err(|_| AuthError::NotFound)?;
        Ok(match self.store().role_overrides(user).await? {
            Some(overrides) => (overrides, true),
            None => (RoleOverrides::default(), false),
        })
    }

    pub async fn set_role_overrides(
        &self,
        admin: Uuid,
        user: Uuid,
        overrides: Option<RoleOverrides>,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        self.current_user(user).await.map_err(|_| AuthError::NotFound)?;
        // Built-in and custom roles alike: an override may keep or suppress a custom role an
        // operator granted by hand, and only someone holding its permissions may change that.
        let catalog = self.full_catalog().await?;
        if let Some(overrides) = &overrides {
            let unknown: Vec<String> = overrides
                .preserved
                .iter()
                .chain(overrides.suppressed.iter())
                .filter(|role| !catalog.contains(role))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Err(AuthError::Invalid {
                    field: "roles",
                    message: format!("unknown roles: {}", unknown.join(", ")),
                });
            }
        }
        let before = self.store().role_overrides(user).await?;
        // Every role whose override changes must be one the administrator could grant.
        let held = self.system_roles(admin).await?;
        let named = |o: &Option<RoleOverrides>| -> std::collections::BTreeSet<(bool, String)> {
            o.iter()
                .flat_map(|o| {
                    o.preserved
                        .iter()
                        .map(|r| (true, r.clone()))
                        .chain(o.suppressed.iter().map(|r| (false, r.clone())))
                })
                .collect()
        };
        let (old, new) = (named(&before), named(&overrides));
        let beyond: std::collections::BTreeSet<String> = old
            .symmetric_difference(&new)
            .map(|(_, role)| role.clone())
            .filter(|role| !catalog.may_grant(&held, role))
            .collect();
        if !beyond.is_empty() {
            return Err(AuthError::Forbidden);
        }
        // Pausing (or resuming) revocation reaches every role the user holds: only an
        // administrator who could grant each of them may do it.
        let enabled = |o: &Option<RoleOverrides>| o.as_ref().is_none_or(|o| o.enabled);
        if enabled(&before) != enabled(&overrides) {
            let held_by_target = self.system_roles(user).await?;
            if held_by_target.iter().any(|role| !catalog.may_grant(&held, role)) {
                return Err(AuthError::Forbidden);
            }
        }
        let name = if overrides.is_some() {
            "admin.role_overrides_updated"
        } else {
            "admin.role_overrides_cleared"
        };
        let audit = AuditEntry::new(Actor::admin(admin), AuditAction::known(name), "user")
            .resource_id(user)
            .change(before.map(|o| json!(o)), overrides.as_ref().map(|o| json!(o)))
            .origin(origin.clone());
        Ok(self
            .store()
            .set_role_overrides(user, overrides.as_ref(), &audit)
            .await?)
    }
}
