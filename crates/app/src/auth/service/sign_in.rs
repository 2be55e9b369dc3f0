//! Registration, sign-in (throttled), refresh rotation, access-token checks and sign-out.

use super::*;

impl<S: Store> AuthService<S> {
    pub async fn register(
        &self,
        account: NewAccount,
        origin: &RequestOrigin,
    ) -> Result<IssuedTokens, AuthError> {
        let email = parse_email(&account.email)?;
        let display_name = parse_display_name(&account.display_name)?;
        let locale = checked_locale(account.locale)?;
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
        let (verification, mail) =
            self.email_token_mail(EmailTokenPurpose::VerifyEmail, email.as_str(), locale.as_deref())?;
        let (session, refresh_token, session_audit) = self.new_session(id, origin, "auth.login_succeeded");
        let session_id = session.id;
        let user = self
            .store
            .create_user(
                NewUser {
                    email: email.clone(),
                    display_name: display_name.into_inner(),
                    password_hash: Some(password_hash),
                    locale,
                    mail: None,
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
    pub(super) async fn throttled_verify(
        &self,
        email: &EmailAddress,
        password: String,
        stored_hash: Option<String>,
        user: Option<Uuid>,
        origin: &RequestOrigin,
    ) -> Result<Verification, AuthError> {
        self.throttled_verify_then(email, password, stored_hash, user, origin, true)
            .await
    }

    /// [`Self::throttled_verify`]; a correct password forgets the failures only when
    /// `forget_failures` (not while a second factor is still owed: the failed codes of this
    /// sign-in count toward the same lockout).
    pub(super) async fn throttled_verify_then(
        &self,
        email: &EmailAddress,
        password: String,
        stored_hash: Option<String>,
        user: Option<Uuid>,
        origin: &RequestOrigin,
        forget_failures: bool,
    ) -> Result<Verification, AuthError> {
        // Parallel checks of one account wait here in arrival order (as long as the throttle's
        // own wait), so the throttle's reservation below rarely finds all checks taken.
        let _turn = self
            .account_gates
            .enter(email.as_str(), StdDuration::from_secs(10))
            .await
            .ok_or(AuthError::AccountLocked {
                retry_after_seconds: 1,
            })?;
        self.reserve_check(email).await?;
        let verification = self.verify_password(password, stored_hash).await?;
        if verification.matches {
            if forget_failures {
                self.store.record_success(email.as_str()).await?;
            } else {
                self.store.release_attempt(email.as_str()).await?;
            }
            return Ok(verification);
        }
        let name = match user {
            Some(_) => "auth.reauthentication_failed",
            None => "auth.login_failed",
        };
        self.record_failed_check(email, user, name, origin).await?;
        Ok(verification)
    }

    /// Reserves one of the allowed checks (password or second factor) of `email`'s account;
    /// a locked account answers `ACCOUNT_LOCKED`.
    pub(super) async fn reserve_check(&self, email: &EmailAddress) -> Result<(), AuthError> {
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
                AttemptPermit::Granted => return Ok(()),
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
    }

    /// A reserved check failed: audited as `name`, counted, and the account locked (and that
    /// audited) when its allowance is used up.
    pub(super) async fn record_failed_check(
        &self,
        email: &EmailAddress,
        user: Option<Uuid>,
        name: &'static str,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let policy = self.settings.throttle;
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
        if let Some(user) = user {
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
            metrics::counter!("steward_lockouts_total").increment(1);
        }
        Ok(())
    }

    /// Signs in with email and password. An account with a second factor gets a challenge
    /// (`mfaToken`) instead of tokens; [`Self::complete_mfa_login`] finishes it.
    pub async fn login(&self, sign_in: SignIn, origin: &RequestOrigin) -> Result<SignInOutcome, AuthError> {
        let email = parse_email(&sign_in.email)?;
        // A locked account's password is still checked: only its holder learns it is locked.
        let user = self
            .store
            .find_user_by_email(&email)
            .await?
            .filter(|user| user.is_active() || user.is_locked());
        let second_factor = match &user {
            Some(user) => self.has_second_factor(user.id).await?,
            None => false,
        };
        let stored_hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let verification = self
            .throttled_verify_then(
                &email,
                sign_in.password.clone(),
                stored_hash,
                None,
                origin,
                !second_factor,
            )
            .await?;
        let Some(user) = user.filter(|_| verification.matches) else {
            return Err(AuthError::InvalidCredentials);
        };
        if user.is_locked() {
            return Err(AuthError::AccountDisabled);
        }
        if verification.needs_rehash {
            let upgraded = self.hash_password(sign_in.password).await?;
            self.store.upgrade_password_hash(user.id, upgraded).await?;
        }
        if second_factor {
            return self.mfa_challenge(user.id).await;
        }
        self.open_session(user, origin, "auth.login_succeeded")
            .await
            .map(|issued| SignInOutcome::Complete(Box::new(issued)))
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
                    // The request carries no access token; the entry is about this session.
                    let origin = RequestOrigin {
                        session: steward_domain::SessionSlot::known(session.id),
                        ..origin.clone()
                    };
                    let audit = user_event(
                        session.user_id,
                        "auth.refresh_reuse_detected",
                        "session",
                        session.id,
                        &origin,
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

    pub(super) async fn tokens_for_session(
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
    pub(super) fn verified_claims(&self, bearer: &str) -> Result<steward_auth::AccessClaims, AuthError> {
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
}
