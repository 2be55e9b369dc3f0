//! Flows that go through the user's mailbox: password reset and email verification.

use super::*;
use crate::mail::MailKind;

impl<S: Store> AuthService<S> {
    /// A single-use mail token for `purpose` and the mail carrying its link, in the
    /// recipient's `locale` where a translation exists.
    pub(super) fn email_token_mail(
        &self,
        purpose: EmailTokenPurpose,
        address: &str,
        locale: Option<&str>,
    ) -> Result<(NewEmailToken, OutgoingMail), AuthError> {
        let token = random_token(32);
        let (ttl, kind) = match purpose {
            EmailTokenPurpose::VerifyEmail => (self.settings.verification_ttl, MailKind::VerifyEmail),
            EmailTokenPurpose::ResetPassword => (self.settings.reset_ttl, MailKind::ResetPassword),
            EmailTokenPurpose::Invitation => (Duration::hours(INVITATION_HOURS), MailKind::Invitation),
        };
        let link = self.settings.links.link(purpose, &token);
        let mail = self.settings.mail.render(
            kind,
            address,
            locale,
            json!({"link": link, "hours": ttl.num_hours()}),
        )?;
        let stored = NewEmailToken {
            purpose,
            email: address.to_owned(),
            token_hash: hash_token(&token),
            expires_at: Utc::now() + ttl,
        };
        Ok((stored, mail))
    }

    pub(super) async fn send_email_token(
        &self,
        user: Uuid,
        purpose: EmailTokenPurpose,
        address: &str,
        locale: Option<&str>,
    ) -> Result<bool, AuthError> {
        let (stored, mail) = self.email_token_mail(purpose, address, locale)?;
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
        self.store.enqueue_email(&mail).await?;
        Ok(true)
    }

    /// An administrator sends `user` a password-reset mail (the same link and limits as
    /// `forgot-password`), optionally ending every session at once. `Ok(false)` when the hourly
    /// cap of reset mails for the account is reached (nothing sent). Locked accounts are
    /// refused: unlock first.
    pub async fn admin_reset_password(
        &self,
        admin: Uuid,
        user: Uuid,
        revoke_sessions: bool,
        origin: &RequestOrigin,
    ) -> Result<bool, AuthError> {
        let account = self.store.find_user(user).await?.ok_or(AuthError::NotFound)?;
        if account.is_locked() {
            return Err(AuthError::Invalid {
                field: "userId",
                message: "the account is locked: unlock it first".to_owned(),
            });
        }
        if !account.is_active() {
            return Err(AuthError::NotFound);
        }
        let sent = self
            .send_email_token(
                user,
                EmailTokenPurpose::ResetPassword,
                &account.email,
                account.locale.as_deref(),
            )
            .await?;
        let name = if sent {
            "admin.password_reset_sent"
        } else {
            "auth.password_reset_capped"
        };
        let entry = AuditEntry::new(Actor::admin(admin), action(name), "user")
            .resource_id(user)
            .change(None, Some(json!({"revokeSessions": revoke_sessions})))
            .origin(origin.clone());
        self.store.record(&entry).await?;
        if sent && revoke_sessions {
            let ended = AuditEntry::new(Actor::admin(admin), action("admin.sessions_revoked"), "user")
                .resource_id(user)
                .origin(origin.clone());
            self.store
                .revoke_user_sessions(user, "password_reset_by_admin", &ended)
                .await?;
            self.forget_user(user);
        }
        Ok(sent)
    }

    /// An administrator marks the account's current email address verified (audited).
    pub async fn admin_verify_email(
        &self,
        admin: Uuid,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<UserRecord, AuthError> {
        let account = self
            .store
            .find_user(user)
            .await?
            .filter(|account| account.is_active() || account.is_locked())
            .ok_or(AuthError::NotFound)?;
        let audit = AuditEntry::new(Actor::admin(admin), action("admin.email_verified"), "user")
            .resource_id(user)
            .change(None, Some(json!({"email": account.email})))
            .origin(origin.clone());
        self.profiles.forget(&user);
        Ok(self
            .store
            .mark_email_verified(user, &account.email, &audit)
            .await?)
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
                .send_email_token(
                    user.id,
                    EmailTokenPurpose::ResetPassword,
                    &user.email,
                    user.locale.as_deref(),
                )
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

    /// Spends a single-use mail token that sets a password (reset, invitation) only once the
    /// password passed every rule, the account-specific ones included: a refused password
    /// leaves the link working. Answers the account and the new password's hash.
    pub(super) async fn redeem_with_password(
        &self,
        purpose: EmailTokenPurpose,
        token: &str,
        password: String,
        field: &'static str,
    ) -> Result<(UserRecord, String), AuthError> {
        let token_hash = hash_token(token);
        let token = self
            .store
            .peek_email_token(purpose, &token_hash, Utc::now())
            .await?
            .ok_or(AuthError::InvalidEmailToken)?;
        let user = self
            .current_user(token.user_id)
            .await
            .map_err(|_| AuthError::InvalidEmailToken)?;
        // A link mailed to an address the account no longer has is void.
        if token.email != user.email {
            return Err(AuthError::InvalidEmailToken);
        }
        let email = parse_email(&user.email)?;
        self.check_new_password(Some(user.id), &password, &email, field)
            .await?;
        let hash = self.hash_password(password).await?;
        let redeemed = self
            .store
            .redeem_email_token(purpose, &token_hash, Utc::now())
            .await?
            .ok_or(AuthError::InvalidEmailToken)?;
        if redeemed != token {
            return Err(AuthError::InvalidEmailToken);
        }
        Ok((user, hash))
    }

    pub async fn reset_password(
        &self,
        token: &str,
        new_password: String,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let (user, hash) = self
            .redeem_with_password(
                EmailTokenPurpose::ResetPassword,
                token,
                new_password,
                "newPassword",
            )
            .await?;
        let audit = user_event(user.id, "auth.password_reset", "user", user.id, origin);
        self.store.change_password(user.id, hash, None, &audit).await?;
        // Every session just ended: forgotten by owner (the store lists none as active now).
        self.forget_user(user.id);
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
        self.send_email_token(
            user,
            EmailTokenPurpose::VerifyEmail,
            &address,
            record.locale.as_deref(),
        )
        .await?;
        Ok(())
    }
}
