//! The authentication service: accounts, sign-in, sessions, refresh rotation, password and
//! email flows. Handlers call it; it decides through the domain and stores through the
//! domain's repository traits.

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
    /// Base URL for links in mail.
    pub public_url: String,
    pub verification_ttl: Duration,
    pub reset_ttl: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            lifetimes: TokenLifetimes::default(),
            throttle: LoginThrottlePolicy::default(),
            session_cache_ttl: StdDuration::from_secs(2),
            public_url: "http://127.0.0.1:8080".to_owned(),
            verification_ttl: Duration::hours(24),
            reset_ttl: Duration::hours(1),
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
}

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
    /// Where clients reach this server (`STEWARD_PUBLIC_URL`).
    pub fn public_url(&self) -> &str {
        &self.settings.public_url
    }

    /// The secret part of enrollment token `id` (see `TokenDeriver::enrollment_secret`).
    pub fn enrollment_secret(&self, id: Uuid) -> String {
        self.deriver.enrollment_secret(&id.to_string())
    }

    pub fn new(store: S, keys: Arc<KeyRing>, hasher: Arc<PasswordHasher>, settings: AuthSettings) -> Self {
        Self {
            deriver: TokenDeriver::new(keys.derivation_secret()),
            sessions: SessionCache::new(settings.session_cache_ttl),
            profiles: TtlCache::new(settings.session_cache_ttl),
            verified: TtlCache::new(VERIFIED_TOKEN_TTL),
            store,
            keys,
            hasher,
            settings,
            roles: RoleCatalog::default(),
            federation: Federation::default(),
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

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn roles(&self) -> &RoleCatalog {
        &self.roles
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Hashing and verification are CPU-bound; they run on the blocking pool so a burst of
    /// sign-ins never stalls the async workers.
    async fn hash_password(&self, password: String) -> Result<String, AuthError> {
        let hasher = Arc::clone(&self.hasher);
        tokio::task::spawn_blocking(move || hasher.hash(&password))
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
        tokio::task::spawn_blocking(move || match hash {
            Some(hash) => hasher.verify(&password, &hash),
            None => {
                hasher.verify_dummy(&password);
                Verification {
                    matches: false,
                    needs_rehash: false,
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
        tokio::task::spawn_blocking(move || hashes.iter().any(|hash| hasher.verify(&password, hash).matches))
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
        check_password_rules(password, email).map_err(|reason| AuthError::WeakPassword(reason, field))?;
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
        let audit = AuditEntry::new(Actor::user(user), action(event), "session")
            .resource_id(session.id)
            .origin(origin.clone());
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

    /// A single-use mail token for `purpose` and the mail carrying its link.
    fn email_token_mail(&self, purpose: EmailTokenPurpose, address: &str) -> (NewEmailToken, OutgoingMail) {
        let token = random_token(32);
        let (ttl, path, subject, intro) = match purpose {
            EmailTokenPurpose::VerifyEmail => (
                self.settings.verification_ttl,
                "verify-email",
                "Confirm your email address",
                "Confirm this email address for your account",
            ),
            EmailTokenPurpose::ResetPassword => (
                self.settings.reset_ttl,
                "reset-password",
                "Reset your password",
                "Someone (hopefully you) asked to reset the password of your account. Choose a new one",
            ),
        };
        let link = format!("{}/{path}?token={token}", self.settings.public_url);
        let hours = ttl.num_hours();
        let body = format!(
            "{intro}:\n\n{link}\n\nThe link works once and expires in {hours} hour{}.\nIf this was not you, ignore this message.\n",
            if hours == 1 { "" } else { "s" }
        );
        let stored = NewEmailToken {
            purpose,
            email: address.to_owned(),
            token_hash: hash_token(&token),
            expires_at: Utc::now() + ttl,
        };
        let mail = OutgoingMail {
            recipient: address.to_owned(),
            subject: subject.to_owned(),
            body,
        };
        (stored, mail)
    }

    async fn send_email_token(
        &self,
        user: Uuid,
        purpose: EmailTokenPurpose,
        address: &str,
    ) -> Result<bool, AuthError> {
        let (stored, mail) = self.email_token_mail(purpose, address);
        // At most a few reset mails per account and hour, whoever asks from wherever: beyond
        // that nothing is sent (and the answer does not say so).
        let cap = (purpose == EmailTokenPurpose::ResetPassword)
            .then(|| (RESET_MAILS_PER_HOUR, Utc::now() - Duration::hours(1)));
        let issued = self
            .store
            .issue_email_token(user, purpose, address, stored.token_hash, stored.expires_at, cap)
            .await?;
        if !issued {
            return Ok(false);
        }
        self.store
            .enqueue_email(&mail.recipient, &mail.subject, &mail.body)
            .await?;
        Ok(true)
    }

    pub async fn register(
        &self,
        account: NewAccount,
        origin: &RequestOrigin,
    ) -> Result<IssuedTokens, AuthError> {
        let email = parse_email(&account.email)?;
        let display_name = parse_display_name(&account.display_name)?;
        self.check_new_password(None, &account.password, &email, "password")
            .await?;
        if self.store.find_user_by_email(&email).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        let password_hash = self.hash_password(account.password).await?;
        let id = Uuid::now_v7();
        let audit = AuditEntry::new(Actor::user(id), action("auth.registered"), "user")
            .resource_id(id)
            .change(
                None,
                Some(json!({"email": email.as_str(), "displayName": display_name.as_str()})),
            )
            .origin(origin.clone());
        // The account, its verification mail and its first session are one transaction: a
        // 201 means all of it happened, an error that none of it did.
        let (verification, mail) = self.email_token_mail(EmailTokenPurpose::VerifyEmail, email.as_str());
        let (session, refresh_token, session_audit) = self.new_session(id, origin, "auth.login_succeeded");
        let session_id = session.id;
        let user = self
            .store
            .create_user(
                NewUser {
                    email: email.clone(),
                    display_name: display_name.into_inner(),
                    password_hash,
                    welcome: Some(Welcome {
                        verification,
                        mail,
                        session,
                        refresh_token_hash: hash_token(&refresh_token),
                        session_audit,
                    }),
                },
                &audit,
            )
            .await
            .map_err(|error| match error {
                steward_domain::RepositoryError::Conflict(_) => AuthError::EmailTaken,
                other => other.into(),
            })?;
        let (access_token, expires_in) = self.issue_access_token(user.id, session_id)?;
        Ok(IssuedTokens {
            access_token,
            refresh_token,
            expires_in,
            user,
        })
    }

    /// Checks a password against the per-account throttle that guards sign-in: one of the
    /// allowed checks is reserved first (a locked account answers `ACCOUNT_LOCKED` without
    /// hashing), a failure is audited and counted toward the lockout, a success clears the
    /// count. Used by sign-in and by every re-entry of the password (change, deletion), so a
    /// stolen access token cannot guess without limit. `user` names the account for the audit
    /// entry when the caller is signed in.
    async fn throttled_verify(
        &self,
        email: &EmailAddress,
        password: String,
        stored_hash: Option<String>,
        user: Option<Uuid>,
        origin: &RequestOrigin,
    ) -> Result<Verification, AuthError> {
        let policy = self.settings.throttle;
        // While all allowed checks are in progress (parallel sign-ins of one account), wait
        // briefly for one to finish rather than refuse.
        let waiting_since = std::time::Instant::now();
        loop {
            match self
                .store
                .reserve_attempt(email.as_str(), policy, Utc::now())
                .await?
            {
                AttemptPermit::Granted => break,
                AttemptPermit::Locked { retry_after_seconds } => {
                    return Err(AuthError::AccountLocked { retry_after_seconds });
                }
                AttemptPermit::Busy if waiting_since.elapsed() < StdDuration::from_secs(10) => {
                    tokio::time::sleep(StdDuration::from_millis(25)).await;
                }
                AttemptPermit::Busy => {
                    return Err(AuthError::AccountLocked {
                        retry_after_seconds: 1,
                    });
                }
            }
        }
        let verification = self.verify_password(password, stored_hash).await?;
        if verification.matches {
            self.store.record_success(email.as_str()).await?;
            return Ok(verification);
        }
        let (name, resource) = match user {
            Some(user) => ("auth.reauthentication_failed", Some(user)),
            None => ("auth.login_failed", None),
        };
        let mut failed = AuditEntry::new(
            Actor {
                kind: steward_domain::ActorKind::User,
                id: user,
            },
            action(name),
            "user",
        )
        .change(None, Some(json!({"email": email.as_str()})))
        .origin(origin.clone());
        if let Some(user) = resource {
            failed = failed.resource_id(user);
        }
        self.store.record(&failed).await?;
        if self
            .store
            .record_failure(email.as_str(), policy, Utc::now())
            .await?
        {
            let locked = AuditEntry::new(Actor::system(), action("auth.account_locked"), "user")
                .change(
                    None,
                    Some(json!({"email": email.as_str(), "minutes": policy.lockout.num_minutes()})),
                )
                .origin(origin.clone());
            self.store.record(&locked).await?;
        }
        Ok(verification)
    }

    pub async fn login(&self, sign_in: SignIn, origin: &RequestOrigin) -> Result<IssuedTokens, AuthError> {
        let email = parse_email(&sign_in.email)?;
        let user = self
            .store
            .find_user_by_email(&email)
            .await?
            .filter(UserRecord::is_active);
        let stored_hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let verification = self
            .throttled_verify(&email, sign_in.password.clone(), stored_hash, None, origin)
            .await?;
        let Some(user) = user.filter(|_| verification.matches) else {
            return Err(AuthError::InvalidCredentials);
        };
        if verification.needs_rehash {
            let upgraded = self.hash_password(sign_in.password).await?;
            self.store.upgrade_password_hash(user.id, upgraded).await?;
        }
        self.open_session(user, origin, "auth.login_succeeded").await
    }

    /// Exchanges a refresh token for a new pair, with reuse detection and the grace window
    /// (see `steward_domain::session::decide_refresh`).
    pub async fn refresh(&self, presented: &str, origin: &RequestOrigin) -> Result<IssuedTokens, AuthError> {
        let hash = hash_token(presented);
        // A lost race re-reads once: the winner's rotation is then visible.
        for _ in 0..3 {
            let token = self
                .store
                .find_refresh_token(&hash)
                .await?
                .ok_or(AuthError::InvalidRefreshToken)?;
            let session = self
                .store
                .find_session(token.session_id)
                .await?
                .ok_or(AuthError::InvalidRefreshToken)?;
            let now = Utc::now();
            let state = RefreshTokenState {
                expires_at: token.expires_at,
                used_at: token.used_at,
                successor_used: token.successor_used,
                session_active: session.is_active(now),
            };
            let successor = self.deriver.refresh_successor(presented);
            match decide_refresh(state, now, self.settings.lifetimes.refresh_grace) {
                RefreshDecision::Reject => return Err(AuthError::InvalidRefreshToken),
                RefreshDecision::ReuseDetected => {
                    let audit = user_event(
                        session.user_id,
                        "auth.refresh_reuse_detected",
                        "session",
                        session.id,
                        origin,
                    );
                    self.store
                        .revoke_session(session.id, session.user_id, "refresh_reuse", &audit)
                        .await?;
                    self.sessions.forget(&session.id);
                    return Err(AuthError::InvalidRefreshToken);
                }
                RefreshDecision::ReplaySuccessor => {
                    return self.tokens_for_session(&session, successor).await;
                }
                RefreshDecision::Rotate => {
                    let expires_at = now + self.settings.lifetimes.refresh;
                    if self
                        .store
                        .rotate_refresh_token(&token, hash_token(&successor), expires_at, now)
                        .await?
                    {
                        return self.tokens_for_session(&session, successor).await;
                    }
                }
            }
        }
        Err(AuthError::InvalidRefreshToken)
    }

    async fn tokens_for_session(
        &self,
        session: &SessionRecord,
        refresh_token: String,
    ) -> Result<IssuedTokens, AuthError> {
        let user = self
            .store
            .find_user(session.user_id)
            .await?
            .filter(UserRecord::is_active)
            .ok_or(AuthError::InvalidRefreshToken)?;
        let (access_token, expires_in) = self.issue_access_token(user.id, session.id)?;
        Ok(IssuedTokens {
            access_token,
            refresh_token,
            expires_in,
            user,
        })
    }

    /// Verifies an access token and that its session is still live.
    pub async fn authenticate(&self, bearer: &str) -> Result<steward_auth::AccessClaims, AuthError> {
        let claims = self.verified_claims(bearer)?;
        // The cache remembers whose session it is, so a hit checks the token's subject too.
        let owner = match self.sessions.get(&claims.sid) {
            Some(owner) => owner,
            None => {
                let session = self.store.find_session(claims.sid).await?;
                let owner = session.filter(|s| s.is_active(Utc::now())).map(|s| s.user_id);
                self.sessions.put(claims.sid, owner);
                owner
            }
        };
        if owner == Some(claims.sub) {
            Ok(claims)
        } else {
            Err(AuthError::Unauthenticated)
        }
    }

    /// The token's claims: from the verification cache while unexpired, else verified now.
    fn verified_claims(&self, bearer: &str) -> Result<steward_auth::AccessClaims, AuthError> {
        let fingerprint = hash_token(bearer);
        if let Some(claims) = self.verified.get(&fingerprint) {
            // The same 5 s leeway as the verifier.
            if claims.exp + 5 > Utc::now().timestamp() {
                return Ok(claims);
            }
            self.verified.forget(&fingerprint);
            return Err(AuthError::Unauthenticated);
        }
        let claims = self.keys.verify(bearer).map_err(|_| AuthError::Unauthenticated)?;
        self.verified.put(fingerprint, claims.clone());
        Ok(claims)
    }

    pub async fn logout(&self, user: Uuid, session: Uuid, origin: &RequestOrigin) -> Result<(), AuthError> {
        let audit = user_event(user, "auth.logout", "session", session, origin);
        self.store.revoke_session(session, user, "logout", &audit).await?;
        self.sessions.forget(&session);
        Ok(())
    }

    /// The caller's profile for reads: from the short cache when fresh.
    pub async fn profile(&self, user: Uuid) -> Result<UserRecord, AuthError> {
        if let Some(record) = self.profiles.get(&user) {
            return Ok(record);
        }
        let record = self.current_user(user).await?;
        self.profiles.put(user, record.clone());
        Ok(record)
    }

    pub async fn current_user(&self, user: Uuid) -> Result<UserRecord, AuthError> {
        self.store
            .find_user(user)
            .await?
            .filter(UserRecord::is_active)
            .ok_or(AuthError::Unauthenticated)
    }

    pub async fn update_profile(
        &self,
        user: Uuid,
        update: ProfileUpdate,
        origin: &RequestOrigin,
    ) -> Result<UserRecord, AuthError> {
        let current = self.current_user(user).await?;
        let mut problems = Vec::new();
        let fields: [(&'static str, &Option<Option<String>>, ProfileCheck); 3] = [
            ("avatarUrl", &update.avatar_url, check_avatar_url),
            ("locale", &update.locale, check_locale),
            ("timezone", &update.timezone, check_timezone),
        ];
        for (field, value, check) in fields {
            if let Some(Some(text)) = value
                && let Err(error) = check(text)
            {
                problems.push((field, error.to_string()));
            }
        }
        if !problems.is_empty() {
            return Err(AuthError::InvalidFields(problems));
        }
        let mut changes = ProfileChanges {
            display_name: update
                .display_name
                .as_deref()
                .map(parse_display_name)
                .transpose()?
                .map(DisplayName::into_inner),
            avatar_url: update.avatar_url,
            locale: update.locale,
            timezone: update.timezone,
            pending_email: None,
        };
        let mut new_email = None;
        if let Some(email) = update.email.as_deref() {
            let email = parse_email(email)?;
            if email.as_str() != current.email {
                if self.store.find_user_by_email(&email).await?.is_some() {
                    return Err(AuthError::EmailTaken);
                }
                changes.pending_email = Some(Some(email.as_str().to_owned()));
                new_email = Some(email);
            }
        }
        let before = json!({"displayName": current.display_name, "avatarUrl": current.avatar_url,
            "locale": current.locale, "timezone": current.timezone, "pendingEmail": current.pending_email});
        let audit_changes = json!({"displayName": changes.display_name, "avatarUrl": changes.avatar_url,
            "locale": changes.locale, "timezone": changes.timezone, "pendingEmail": changes.pending_email});
        let audit = AuditEntry::new(Actor::user(user), action("user.profile_updated"), "user")
            .resource_id(user)
            .change(Some(before), Some(audit_changes))
            .origin(origin.clone());
        let updated = self
            .store
            .update_profile(user, changes, update.expected_version, &audit)
            .await?;
        self.profiles.forget(&user);
        if let Some(email) = new_email {
            self.send_email_token(user, EmailTokenPurpose::VerifyEmail, email.as_str())
                .await?;
        }
        Ok(updated)
    }

    pub async fn change_password(
        &self,
        user: Uuid,
        session: Uuid,
        current_password: String,
        new_password: String,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let record = self.current_user(user).await?;
        let email = parse_email(&record.email)?;
        let verification = self
            .throttled_verify(
                &email,
                current_password,
                record.password_hash.clone(),
                Some(user),
                origin,
            )
            .await?;
        if !verification.matches {
            return Err(AuthError::InvalidCredentials);
        }
        self.check_new_password(Some(user), &new_password, &email, "newPassword")
            .await?;
        let hash = self.hash_password(new_password).await?;
        let audit = user_event(user, "auth.password_changed", "user", user, origin);
        self.store
            .change_password(user, hash, Some(session), &audit)
            .await?;
        self.profiles.forget(&user);
        Ok(())
    }

    pub async fn sessions(&self, user: Uuid) -> Result<Vec<SessionRecord>, AuthError> {
        Ok(self.store.active_sessions(user, Utc::now()).await?)
    }

    pub async fn revoke_session(
        &self,
        user: Uuid,
        session: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let audit = user_event(user, "auth.session_revoked", "session", session, origin);
        if !self
            .store
            .revoke_session(session, user, "revoked_by_user", &audit)
            .await?
        {
            return Err(AuthError::NotFound);
        }
        self.sessions.forget(&session);
        Ok(())
    }

    /// Always succeeds from the caller's view, so it cannot be used to probe for accounts.
    pub async fn forgot_password(&self, email: &str, origin: &RequestOrigin) -> Result<(), AuthError> {
        let Ok(email) = EmailAddress::parse(email) else {
            return Ok(());
        };
        if let Some(user) = self
            .store
            .find_user_by_email(&email)
            .await?
            .filter(UserRecord::is_active)
        {
            let sent = self
                .send_email_token(user.id, EmailTokenPurpose::ResetPassword, &user.email)
                .await?;
            let name = if sent {
                "auth.password_reset_requested"
            } else {
                "auth.password_reset_capped"
            };
            let audit = user_event(user.id, name, "user", user.id, origin);
            self.store.record(&audit).await?;
        }
        Ok(())
    }

    pub async fn reset_password(
        &self,
        token: &str,
        new_password: String,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        // Rules that need no account are checked before the single-use token is spent.
        let placeholder =
            EmailAddress::parse("reset@steward.invalid").map_err(|_| AuthError::InvalidEmailToken)?;
        check_password_rules(&new_password, &placeholder)
            .map_err(|reason| AuthError::WeakPassword(reason, "newPassword"))?;
        let redeemed = self
            .store
            .redeem_email_token(EmailTokenPurpose::ResetPassword, &hash_token(token), Utc::now())
            .await?
            .ok_or(AuthError::InvalidEmailToken)?;
        let user = self
            .current_user(redeemed.user_id)
            .await
            .map_err(|_| AuthError::InvalidEmailToken)?;
        let email = parse_email(&user.email)?;
        self.check_new_password(Some(user.id), &new_password, &email, "newPassword")
            .await?;
        let hash = self.hash_password(new_password).await?;
        let audit = user_event(user.id, "auth.password_reset", "user", user.id, origin);
        self.store.change_password(user.id, hash, None, &audit).await?;
        self.profiles.forget(&user.id);
        for session in self.store.active_sessions(user.id, Utc::now()).await? {
            self.sessions.forget(&session.id);
        }
        self.store.clear(&user.email).await?;
        Ok(())
    }

    pub async fn verify_email(&self, token: &str, origin: &RequestOrigin) -> Result<UserRecord, AuthError> {
        let redeemed = self
            .store
            .redeem_email_token(EmailTokenPurpose::VerifyEmail, &hash_token(token), Utc::now())
            .await?
            .ok_or(AuthError::InvalidEmailToken)?;
        let audit = AuditEntry::new(
            Actor::user(redeemed.user_id),
            action("auth.email_verified"),
            "user",
        )
        .resource_id(redeemed.user_id)
        .change(None, Some(json!({"email": redeemed.email})))
        .origin(origin.clone());
        self.profiles.forget(&redeemed.user_id);
        self.store
            .mark_email_verified(redeemed.user_id, &redeemed.email, &audit)
            .await
            .map_err(|error| match error {
                steward_domain::RepositoryError::NotFound => AuthError::InvalidEmailToken,
                other => other.into(),
            })
    }

    pub async fn resend_verification(&self, user: Uuid) -> Result<(), AuthError> {
        let record = self.current_user(user).await?;
        let address = match (&record.pending_email, record.email_verified_at) {
            (Some(pending), _) => pending.clone(),
            (None, None) => record.email.clone(),
            (None, Some(_)) => return Ok(()),
        };
        self.send_email_token(user, EmailTokenPurpose::VerifyEmail, &address)
            .await?;
        Ok(())
    }

    pub async fn delete_account(
        &self,
        user: Uuid,
        password: Option<String>,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let record = self.current_user(user).await?;
        if record.password_hash.is_some() {
            let email = parse_email(&record.email)?;
            let verification = self
                .throttled_verify(
                    &email,
                    password.unwrap_or_default(),
                    record.password_hash.clone(),
                    Some(user),
                    origin,
                )
                .await?;
            if !verification.matches {
                return Err(AuthError::InvalidCredentials);
            }
        }
        let sessions = self.store.active_sessions(user, Utc::now()).await?;
        let audit = AuditEntry::new(Actor::user(user), action("auth.account_deleted"), "user")
            .resource_id(user)
            .origin(RequestOrigin {
                ip_address: None,
                user_agent: None,
                request_id: origin.request_id.clone(),
            });
        self.store.erase_user(user, &audit).await?;
        self.profiles.forget(&user);
        for session in sessions {
            self.sessions.forget(&session.id);
        }
        Ok(())
    }

    pub async fn export(&self, user: Uuid) -> Result<serde_json::Value, AuthError> {
        Ok(self.store.export_user(user).await?)
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
                            password_hash: hash,
                            welcome: None,
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
