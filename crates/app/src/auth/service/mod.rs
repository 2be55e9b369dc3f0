//! The authentication service: accounts, sign-in, sessions, refresh rotation, password and
//! email flows. Handlers call it; it decides through the domain and stores through the
//! domain's repository traits.

mod account;
mod admin_accounts;
mod gates;

pub use admin_accounts::{AdminNewAccount, AdminProfileUpdate};
mod mail_flows;
mod mfa;
mod sign_in;

pub use mfa::{MfaProof, MfaSettings, SignInOutcome, TotpSetup, png_data_url};

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use serde_json::json;
use steward_auth::{KeyRing, PasswordHasher, TokenDeriver, Verification, hash_token, random_token};
use steward_domain::accounts::{
    AttemptPermit, EmailTokenPurpose, NewEmailToken, NewUser, OutgoingMail, ProfileChanges, SessionRecord,
    UserRecord, Welcome,
};
use steward_domain::identity::{
    DisplayName, EmailAddress, InvalidProfileField, PASSWORD_HISTORY, WeakPassword, check_avatar_url,
    check_locale, check_password_rules, check_timezone,
};

type ProfileCheck = fn(&str) -> Result<(), InvalidProfileField>;
use crate::steward::Store;
use steward_domain::rbac::RoleCatalog;
use steward_domain::session::{
    LoginThrottlePolicy, RefreshDecision, RefreshTokenState, TokenLifetimes, decide_refresh,
};
use steward_domain::{Actor, AuditAction, AuditEntry, RequestOrigin};
use uuid::Uuid;

use super::error::AuthError;
use super::federation::Federation;
use crate::cache::{SessionCache, TtlCache};

/// How long a verified access token's claims are remembered (expiry is still checked).
const VERIFIED_TOKEN_TTL: StdDuration = StdDuration::from_secs(300);

/// Settings of the authentication service.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub lifetimes: TokenLifetimes,
    pub throttle: LoginThrottlePolicy,
    pub session_cache_ttl: StdDuration,
    /// Steward's externally visible base URL (enrollment QR codes, operators' mail).
    pub public_url: String,
    /// Where the links in account mail lead.
    pub links: crate::mail::MailLinks,
    /// The templates mail is rendered from.
    pub mail: std::sync::Arc<crate::mail::MailTemplates>,
    pub verification_ttl: Duration,
    pub reset_ttl: Duration,
    /// The least zxcvbn strength (0–4) of a new password (`STEWARD_PASSWORD_MIN_STRENGTH`).
    pub password_min_strength: u8,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            lifetimes: TokenLifetimes::default(),
            throttle: LoginThrottlePolicy::default(),
            session_cache_ttl: StdDuration::from_secs(2),
            public_url: "http://127.0.0.1:8080".to_owned(),
            links: crate::mail::MailLinks::default(),
            mail: std::sync::Arc::new(crate::mail::MailTemplates::built_in()),
            verification_ttl: Duration::hours(24),
            reset_ttl: Duration::hours(1),
            password_min_strength: steward_domain::identity::DEFAULT_PASSWORD_MIN_STRENGTH,
        }
    }
}

/// What sign-in, registration and refresh answer.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub user: UserRecord,
}

pub struct NewAccount {
    pub email: String,
    pub password: String,
    pub display_name: String,
    /// A BCP 47 tag for the account's mails (the verification mail included).
    pub locale: Option<String>,
}

pub struct SignIn {
    pub email: String,
    pub password: String,
}

/// Profile fields a user may change; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ProfileUpdate {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub avatar_url: Option<Option<String>>,
    pub locale: Option<Option<String>>,
    pub timezone: Option<Option<String>>,
    pub expected_version: Option<i32>,
}

pub struct AuthService<S> {
    store: S,
    keys: Arc<KeyRing>,
    hasher: Arc<PasswordHasher>,
    deriver: TokenDeriver,
    settings: AuthSettings,
    sessions: SessionCache,
    /// Profiles for `GET /me`, kept as briefly as session states and dropped on local changes.
    profiles: TtlCache<UserRecord>,
    /// Access tokens whose signature was checked, by the token's SHA-256: RS256 verification is
    /// the dominant cost of an authenticated read, and a client presents the same token for an
    /// hour. Expiry is re-checked on every hit; revocation is the session cache's business.
    verified: TtlCache<steward_auth::AccessClaims, String>,
    roles: RoleCatalog,
    federation: Federation,
    mfa: MfaSettings,
    /// When admin MFA enforcement was switched on, once read from the store.
    enforced_since: std::sync::OnceLock<chrono::DateTime<Utc>>,
    /// Hashes run at once, first come first served.
    hash_gate: Arc<tokio::sync::Semaphore>,
    /// Each account's password checks in flight, in arrival order.
    account_gates: gates::AccountGates,
}

/// How long an operator's invitation link works.
pub const INVITATION_HOURS: i64 = 72;

/// Reset mails one account receives per hour at most (requests beyond are answered alike).
pub const RESET_MAILS_PER_HOUR: u64 = 3;

fn action(name: &'static str) -> AuditAction {
    AuditAction::known(name)
}

/// The audit entry of something a user did to a resource, from where they did it.
fn user_event(
    user: Uuid,
    name: &'static str,
    resource_type: &str,
    resource_id: Uuid,
    origin: &RequestOrigin,
) -> AuditEntry {
    AuditEntry::new(Actor::user(user), action(name), resource_type)
        .resource_id(resource_id)
        .origin(origin.clone())
}

fn parse_email(value: &str) -> Result<EmailAddress, AuthError> {
    EmailAddress::parse(value).map_err(|error| AuthError::Invalid {
        field: "email",
        message: error.to_string(),
    })
}

fn parse_display_name(value: &str) -> Result<DisplayName, AuthError> {
    DisplayName::parse(value).map_err(|error| AuthError::Invalid {
        field: "displayName",
        message: error.to_string(),
    })
}

impl<S: Store> AuthService<S> {
    /// The templates mail is rendered from.
    pub fn mail_templates(&self) -> &crate::mail::MailTemplates {
        &self.settings.mail
    }

    /// Where clients reach this server (`STEWARD_PUBLIC_URL`).
    pub fn public_url(&self) -> &str {
        &self.settings.public_url
    }

    /// The secret part of enrollment token `id` (see `TokenDeriver::enrollment_secret`).
    pub fn enrollment_secret(&self, id: Uuid) -> String {
        self.deriver.enrollment_secret(&id.to_string())
    }

    /// A report recipient's unsubscribe token (see `TokenDeriver::report_unsubscribe_token`).
    pub fn report_unsubscribe_token(&self, recipient: Uuid) -> String {
        self.deriver
            .report_unsubscribe_token(&recipient.simple().to_string())
    }

    /// The recipient an unsubscribe token names, when it is genuine.
    pub fn open_report_unsubscribe_token(&self, token: &str) -> Option<Uuid> {
        self.deriver
            .open_report_unsubscribe_token(token)
            .and_then(|recipient| recipient.parse().ok())
    }

    pub fn new(store: S, keys: Arc<KeyRing>, hasher: Arc<PasswordHasher>, settings: AuthSettings) -> Self {
        let account_gates =
            gates::AccountGates::new(usize::try_from(settings.throttle.max_attempts).unwrap_or(1));
        Self {
            deriver: TokenDeriver::new(keys.derivation_secret()),
            sessions: SessionCache::new(settings.session_cache_ttl),
            // Whole profiles and whole tokens (as keys) are larger: fewer of them.
            profiles: TtlCache::with_capacity(settings.session_cache_ttl, 250_000),
            verified: TtlCache::with_capacity(VERIFIED_TOKEN_TTL, 250_000),
            store,
            keys,
            hasher,
            settings,
            roles: RoleCatalog::default(),
            federation: Federation::default(),
            mfa: MfaSettings::default(),
            enforced_since: std::sync::OnceLock::new(),
            hash_gate: gates::hash_gate(),
            account_gates,
        }
    }

    /// Adds identity providers and the group → role mapping.
    pub fn with_federation(mut self, federation: Federation) -> Self {
        self.federation = federation;
        self
    }

    pub(super) fn federation(&self) -> &Federation {
        &self.federation
    }

    /// Opens a session for a user who proved who they are some other way (a provider).
    pub(super) async fn sign_in_user(
        &self,
        user: UserRecord,
        origin: &RequestOrigin,
    ) -> Result<IssuedTokens, AuthError> {
        self.open_session(user, origin, "auth.login_succeeded").await
    }

    /// Forgets what this instance remembered of `user`'s sessions and profile, after an
    /// administrator locked the account or ended its sessions (other instances notice within
    /// the session cache's bound).
    pub fn forget_user(&self, user: Uuid) {
        self.sessions.retain(|owner| *owner != Some(user));
        self.profiles.forget(&user);
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn roles(&self) -> &RoleCatalog {
        &self.roles
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// A place among the hashes running at once, in arrival order; it travels into the blocking
    /// task, so a request that goes away mid-hash still holds it until the hash ends.
    async fn hash_turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AuthError> {
        Arc::clone(&self.hash_gate)
            .acquire_owned()
            .await
            .map_err(|error| AuthError::Hashing(error.to_string()))
    }

    /// Hashing and verification are CPU-bound; they run on the blocking pool so a burst of
    /// sign-ins never stalls the async workers.
    async fn hash_password(&self, password: String) -> Result<String, AuthError> {
        let hasher = Arc::clone(&self.hasher);
        let turn = self.hash_turn().await?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            hasher.hash(&password)
        })
        .await
        .map_err(|error| AuthError::Hashing(error.to_string()))?
        .map_err(|error| AuthError::Hashing(error.to_string()))
    }

    async fn verify_password(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<Verification, AuthError> {
        let hasher = Arc::clone(&self.hasher);
        let turn = self.hash_turn().await?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            match hash {
                Some(hash) => hasher.verify(&password, &hash),
                None => {
                    hasher.verify_dummy(&password);
                    Verification {
                        matches: false,
                        needs_rehash: false,
                    }
                }
            }
        })
        .await
        .map_err(|error| AuthError::Hashing(error.to_string()))
    }

    /// Whether `password` matches any of the user's last passwords.
    async fn was_recently_used(&self, user: Uuid, password: &str) -> Result<bool, AuthError> {
        let hashes = self.store.recent_password_hashes(user, PASSWORD_HISTORY).await?;
        let hasher = Arc::clone(&self.hasher);
        let password = password.to_owned();
        let turn = self.hash_turn().await?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            hashes.iter().any(|hash| hasher.verify(&password, hash).matches)
        })
        .await
        .map_err(|error| AuthError::Hashing(error.to_string()))
    }

    async fn check_new_password(
        &self,
        user: Option<Uuid>,
        password: &str,
        email: &EmailAddress,
        field: &'static str,
    ) -> Result<(), AuthError> {
        check_password_rules(password, email, self.settings.password_min_strength)
            .map_err(|reason| AuthError::WeakPassword(reason, field))?;
        if let Some(user) = user
            && self.was_recently_used(user, password).await?
        {
            return Err(AuthError::WeakPassword(WeakPassword::RecentlyUsed, field));
        }
        Ok(())
    }

    fn issue_access_token(&self, user: Uuid, session: Uuid) -> Result<(String, i64), AuthError> {
        let lifetime = self.settings.lifetimes.access.num_seconds();
        let (token, _) = self
            .keys
            .issue(user, session, lifetime)
            .map_err(|error| AuthError::Signing(error.to_string()))?;
        Ok((token, lifetime))
    }

    /// A new session for `user` (not stored yet), its refresh token and the audit entry.
    fn new_session(
        &self,
        user: Uuid,
        origin: &RequestOrigin,
        event: &'static str,
    ) -> (SessionRecord, String, AuditEntry) {
        let now = Utc::now();
        let session = SessionRecord {
            id: Uuid::now_v7(),
            user_id: user,
            ip_address: origin.ip_address.clone(),
            user_agent: origin.user_agent.clone(),
            created_at: now,
            last_used_at: Some(now),
            expires_at: now + self.settings.lifetimes.refresh,
            revoked_at: None,
        };
        let refresh_token = random_token(32);
        // The sign-in is the session's first entry.
        let origin = RequestOrigin {
            session: steward_domain::SessionSlot::known(session.id),
            ..origin.clone()
        };
        let audit = AuditEntry::new(Actor::user(user), action(event), "session")
            .resource_id(session.id)
            .origin(origin);
        (session, refresh_token, audit)
    }

    async fn open_session(
        &self,
        user: UserRecord,
        origin: &RequestOrigin,
        event: &'static str,
    ) -> Result<IssuedTokens, AuthError> {
        let (session, refresh_token, audit) = self.new_session(user.id, origin, event);
        self.store
            .open_session(session.clone(), hash_token(&refresh_token), &audit)
            .await?;
        let (access_token, expires_in) = self.issue_access_token(user.id, session.id)?;
        Ok(IssuedTokens {
            access_token,
            refresh_token,
            expires_in,
            user,
        })
    }

    pub async fn system_roles(&self, user: Uuid) -> Result<Vec<String>, AuthError> {
        Ok(self.store.system_roles(user).await?)
    }

    /// Creates the account if needed (with `password`) and grants it `super_admin`. For the
    /// `steward admin create` command.
    pub async fn create_or_promote_admin(
        &self,
        email: &str,
        password: Option<String>,
        display_name: Option<String>,
    ) -> Result<(UserRecord, bool), AuthError> {
        let address = parse_email(email)?;
        let (user, created) = match self.store.find_user_by_email(&address).await? {
            Some(user) => (user, false),
            None => {
                let password = password.ok_or(AuthError::Invalid {
                    field: "password",
                    message: "a new account needs a password (--password-stdin)".to_owned(),
                })?;
                self.check_new_password(None, &password, &address, "password")
                    .await?;
                let name = parse_display_name(display_name.as_deref().unwrap_or("Administrator"))?;
                let hash = self.hash_password(password).await?;
                let id = Uuid::now_v7();
                let audit = AuditEntry::new(Actor::system(), action("user.created"), "user")
                    .resource_id(id)
                    .change(None, Some(json!({"email": address.as_str()})));
                let user = self
                    .store
                    .create_user(
                        NewUser {
                            email: address.clone(),
                            display_name: name.into_inner(),
                            password_hash: Some(hash),
                            locale: None,
                            welcome: None,
                            mail: None,
                        },
                        &audit,
                    )
                    .await?;
                (user, true)
            }
        };
        let audit = AuditEntry::new(Actor::system(), action("admin.role_granted"), "user")
            .resource_id(user.id)
            .change(None, Some(json!({"role": "super_admin"})));
        self.store
            .grant_system_role(user.id, "super_admin", &audit)
            .await?;
        Ok((user, created))
    }
}

/// An optional locale of a new account, checked like a profile's (`400` naming `locale`).
pub(crate) fn checked_locale(locale: Option<String>) -> Result<Option<String>, AuthError> {
    match locale {
        Some(tag) => match steward_domain::identity::check_locale(&tag) {
            Ok(()) => Ok(Some(tag)),
            Err(error) => Err(AuthError::InvalidFields(vec![("locale", error.to_string())])),
        },
        None => Ok(None),
    }
}
