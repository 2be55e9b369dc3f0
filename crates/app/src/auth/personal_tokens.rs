//! Personal access tokens: long-lived bearer secrets a user mints for scripts, limited to
//! scopes they could exercise themselves.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use steward_auth::{Secret, hash_token};
use steward_domain::accounts::PersonalToken;
use steward_domain::rbac::RoleCatalog;
use steward_domain::{Actor, AuditAction, AuditEntry, RequestOrigin};
use uuid::Uuid;

use super::error::AuthError;
use super::service::AuthService;
use crate::principal::{BUILT_IN_CATALOG, Credential, Principal};
use crate::steward::Store;

/// Every personal access token starts with this, so scanners and Steward recognise them.
pub const PAT_PREFIX: &str = "stw_pat_";

impl<S: Store> AuthService<S> {
    pub async fn create_personal_token(
        &self,
        user: Uuid,
        name: &str,
        scopes: Vec<String>,
        expires_at: Option<DateTime<Utc>>,
        origin: &RequestOrigin,
    ) -> Result<(PersonalToken, String), AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(AuthError::Invalid {
                field: "name",
                message: "must be 1 to 100 characters".to_owned(),
            });
        }
        if scopes.is_empty() {
            return Err(AuthError::Invalid {
                field: "scopes",
                message: "name at least one scope".to_owned(),
            });
        }
        if expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(AuthError::Invalid {
                field: "expiresAt",
                message: "must be in the future".to_owned(),
            });
        }
        let held = self.system_roles(user).await?;
        let refused = self.catalog_for(&held).await?.undelegable_scopes(&held, &scopes);
        if !refused.is_empty() {
            return Err(AuthError::Invalid {
                field: "scopes",
                message: format!("not yours to delegate: {}", refused.join(", ")),
            });
        }
        let mut scopes = scopes;
        scopes.sort();
        scopes.dedup();
        let secret = Secret::generate(PAT_PREFIX);
        let token = PersonalToken {
            id: Uuid::now_v7(),
            user_id: user,
            name: name.to_owned(),
            prefix: secret.prefix.clone(),
            scopes,
            created_at: Utc::now(),
            expires_at,
            last_used_at: None,
            last_used_ip: None,
        };
        let audit = AuditEntry::new(
            steward_domain::Actor::user(user),
            steward_domain::AuditAction::known("auth.token_created"),
            "personal_access_token",
        )
        .resource_id(token.id)
        .change(
            None,
            Some(json!({"name": token.name, "scopes": token.scopes, "expiresAt": token.expires_at})),
        )
        .origin(origin.clone());
        self.store()
            .create_personal_token(&token, secret.hash, &audit)
            .await?;
        Ok((token, secret.secret))
    }

    pub async fn personal_tokens(&self, user: Uuid) -> Result<Vec<PersonalToken>, AuthError> {
        Ok(self.store().personal_tokens(user, Utc::now()).await?)
    }

    pub async fn revoke_personal_token(
        &self,
        user: Uuid,
        id: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let audit = AuditEntry::new(
            steward_domain::Actor::user(user),
            steward_domain::AuditAction::known("auth.token_revoked"),
            "personal_access_token",
        )
        .resource_id(id)
        .origin(origin.clone());
        if self.store().revoke_personal_token(user, id, &audit).await? {
            Ok(())
        } else {
            Err(AuthError::NotFound)
        }
    }

    /// The owner and scopes of a live personal access token; records its use.
    pub async fn authenticate_personal_token(
        &self,
        secret: &str,
        ip: Option<String>,
    ) -> Result<(Uuid, Vec<String>), AuthError> {
        let token = self
            .store()
            .use_personal_token(&hash_token(secret), Utc::now(), ip)
            .await?
            .ok_or(AuthError::Unauthenticated)?;
        self.current_user(token.user_id).await?;
        Ok((token.user_id, token.scopes))
    }
}

impl<S: Store> AuthService<S> {
    /// Who a bearer token speaks for: a session's access token, or a personal access token
    /// (`stw_pat_…`) with its scopes. System roles are not loaded (see [`Self::with_roles`]).
    pub async fn principal(&self, bearer: &str, ip: Option<String>) -> Result<Principal, AuthError> {
        if bearer.starts_with(PAT_PREFIX) {
            let (user, scopes) = self.authenticate_personal_token(bearer, ip).await?;
            return Ok(Principal::new(user, Credential::PersonalToken { scopes }));
        }
        let claims = self.authenticate(bearer).await?;
        Ok(Principal::new(
            claims.sub,
            Credential::Session { session: claims.sid },
        ))
    }

    /// Records an admin request refused for want of `permission` (`None`: any system role) or
    /// of its scope (`scope: true`): who asked for what, from where (`admin.access_denied`).
    pub async fn record_access_denied(
        &self,
        principal: &Principal,
        permission: Option<&str>,
        scope: bool,
        target: &str,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let entry = AuditEntry::new(
            Actor::user(principal.user),
            AuditAction::known("admin.access_denied"),
            "admin_api",
        )
        .change(
            None,
            Some(json!({
                "permission": permission.unwrap_or("any system role"),
                "missing": if scope { "scope" } else { "role" },
                "request": target.chars().take(300).collect::<String>(),
            })),
        )
        .origin(origin.clone());
        self.store().record(&entry).await?;
        Ok(())
    }

    /// `principal` with its system roles, for decisions that depend on them.
    /// Custom roles are read here, once per request and only when the user holds one, so a
    /// role created, changed or deleted on another instance counts on the next request.
    pub async fn with_roles(&self, mut principal: Principal) -> Result<Principal, AuthError> {
        principal.roles = self.system_roles(principal.user).await?;
        principal.catalog = self.catalog_for(&principal.roles).await?;
        Ok(principal)
    }

    /// The catalog to decide about someone holding `roles`: the built-in roles alone when
    /// those are all they hold, else with every custom role.
    pub async fn catalog_for<R: AsRef<str>>(&self, roles: &[R]) -> Result<Arc<RoleCatalog>, AuthError> {
        if roles.iter().all(|role| RoleCatalog::is_built_in(role.as_ref())) {
            return Ok(Arc::clone(&BUILT_IN_CATALOG));
        }
        self.full_catalog().await
    }

    /// Built-in and custom roles.
    pub async fn full_catalog(&self) -> Result<Arc<RoleCatalog>, AuthError> {
        let custom = self.store().custom_roles().await?;
        Ok(Arc::new(
            RoleCatalog::built_in().with_custom(custom.iter().map(|role| role.definition())),
        ))
    }
}
