//! The signed-in user's own account: profile, password, sessions, deletion and export.

use super::*;

impl<S: Store> AuthService<S> {
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
            self.send_email_token(
                user,
                EmailTokenPurpose::VerifyEmail,
                email.as_str(),
                updated.locale.as_deref(),
            )
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
        // The other sessions just ended; this instance forgets them at once (the current one
        // is read again from the store).
        self.forget_user(user);
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
                ..RequestOrigin::default()
            });
        self.store
            .erase_user(user, &audit)
            .await
            .map_err(|error| match error {
                steward_domain::RepositoryError::Conflict(_) => AuthError::LastSuperAdmin,
                other => other.into(),
            })?;
        self.profiles.forget(&user);
        for session in sessions {
            self.sessions.forget(&session.id);
        }
        Ok(())
    }

    pub async fn export(&self, user: Uuid) -> Result<serde_json::Value, AuthError> {
        Ok(self.store.export_user(user).await?)
    }
}
