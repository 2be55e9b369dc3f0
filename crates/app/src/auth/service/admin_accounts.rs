//! Accounts operators create and change. Created with a password (the registration rules, a
//! verification mail to the address) or without one (an invitation mail whose link sets the
//! password within 72 hours, once, and confirms the address); changed by name, address (in
//! effect at once, unverified, a verification mail to it), locale and time zone.

use steward_domain::accounts::AdminUserChanges;

use super::*;

/// What an operator gives for a new account.
#[derive(Debug, Clone)]
pub struct AdminNewAccount {
    pub email: String,
    pub display_name: String,
    /// `None`: invite the user to choose one.
    pub password: Option<String>,
    /// Without a password: whether the invitation mail goes out (without it the user sets a
    /// password through "forgot password").
    pub invite: bool,
    /// A BCP 47 tag for the account's mails (the invitation or verification mail included).
    pub locale: Option<String>,
}

/// What an operator changes; absent fields keep their value, `Some(None)` clears locale or
/// time zone.
#[derive(Debug, Clone, Default)]
pub struct AdminProfileUpdate {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub locale: Option<Option<String>>,
    pub timezone: Option<Option<String>>,
    pub expected_version: Option<i32>,
}

impl AdminProfileUpdate {
    pub fn changes_fields(&self) -> bool {
        self.display_name.is_some()
            || self.email.is_some()
            || self.locale.is_some()
            || self.timezone.is_some()
    }
}

impl<S: Store> AuthService<S> {
    /// Changes an active or locked account as `admin`, audited (`admin.user_updated`) with the
    /// changed fields before and after. A new address must be free (`EmailTaken`).
    pub async fn admin_update_user(
        &self,
        admin: Uuid,
        user: Uuid,
        update: AdminProfileUpdate,
        origin: &RequestOrigin,
    ) -> Result<UserRecord, AuthError> {
        let current = self
            .store
            .find_user(user)
            .await?
            .filter(|account| account.is_active() || account.is_locked())
            .ok_or(AuthError::NotFound)?;
        let mut problems = Vec::new();
        let fields: [(&'static str, &Option<Option<String>>, ProfileCheck); 2] = [
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
        let display_name = update
            .display_name
            .as_deref()
            .map(parse_display_name)
            .transpose()?
            .map(DisplayName::into_inner);
        let mut email = None;
        if let Some(text) = update.email.as_deref() {
            let parsed = parse_email(text)?;
            if parsed.as_str() != current.email {
                if self.store.find_user_by_email(&parsed).await?.is_some() {
                    return Err(AuthError::EmailTaken);
                }
                email = Some(parsed);
            }
        }
        let mail = email
            .as_ref()
            .map(|address| {
                self.email_token_mail(
                    EmailTokenPurpose::VerifyEmail,
                    address.as_str(),
                    match &update.locale {
                        Some(changed) => changed.as_deref(),
                        None => current.locale.as_deref(),
                    },
                )
            })
            .transpose()?;
        let mut before = serde_json::Map::new();
        let mut after = serde_json::Map::new();
        let mut note = |field: &str, old: serde_json::Value, new: serde_json::Value| {
            before.insert(field.to_owned(), old);
            after.insert(field.to_owned(), new);
        };
        if let Some(name) = &display_name {
            note("displayName", json!(current.display_name), json!(name));
        }
        if let Some(address) = &email {
            note("email", json!(current.email), json!(address.as_str()));
        }
        if let Some(locale) = &update.locale {
            note("locale", json!(current.locale), json!(locale));
        }
        if let Some(timezone) = &update.timezone {
            note("timezone", json!(current.timezone), json!(timezone));
        }
        let audit = AuditEntry::new(Actor::admin(admin), action("admin.user_updated"), "user")
            .resource_id(user)
            .change(Some(before.into()), Some(after.into()))
            .origin(origin.clone());
        let changes = AdminUserChanges {
            display_name,
            email: email.map(|address| address.as_str().to_owned()),
            locale: update.locale,
            timezone: update.timezone,
        };
        let updated = self
            .store
            .admin_update_user(user, changes, update.expected_version, mail, &audit)
            .await
            .map_err(|error| match error {
                steward_domain::RepositoryError::Conflict(_) => AuthError::EmailTaken,
                other => other.into(),
            })?;
        self.profiles.forget(&user);
        Ok(updated)
    }

    /// Creates an account as `admin`: the account, its invitation or verification mail and
    /// the audit entry (`admin.user_created`) are one transaction.
    pub async fn admin_create_user(
        &self,
        admin: Uuid,
        account: AdminNewAccount,
        origin: &RequestOrigin,
    ) -> Result<UserRecord, AuthError> {
        let (user, audit) = self.prepare_admin_account(admin, account, origin).await?;
        self.store
            .create_user(user, &audit)
            .await
            .map_err(|error| match error {
                steward_domain::RepositoryError::Conflict(_) => AuthError::EmailTaken,
                other => other.into(),
            })
    }

    /// Checks and prepares an operator's new account (its mail and audit entry included)
    /// without storing it.
    pub(crate) async fn prepare_admin_account(
        &self,
        admin: Uuid,
        account: AdminNewAccount,
        origin: &RequestOrigin,
    ) -> Result<(NewUser, AuditEntry), AuthError> {
        let email = parse_email(&account.email)?;
        let display_name = parse_display_name(&account.display_name)?;
        let locale = checked_locale(account.locale)?;
        let password_hash = match account.password {
            Some(password) => {
                self.check_new_password(None, &password, &email, "password")
                    .await?;
                Some(self.hash_password(password).await?)
            }
            None => None,
        };
        if self.store.find_user_by_email(&email).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        let invited = password_hash.is_none();
        let purpose = if invited {
            EmailTokenPurpose::Invitation
        } else {
            EmailTokenPurpose::VerifyEmail
        };
        let mail = (!invited || account.invite)
            .then(|| self.email_token_mail(purpose, email.as_str(), locale.as_deref()))
            .transpose()?;
        let id = Uuid::now_v7();
        let audit = AuditEntry::new(Actor::admin(admin), action("admin.user_created"), "user")
            .resource_id(id)
            .change(
                None,
                Some(json!({"email": email.as_str(), "displayName": display_name.as_str(), "invited": invited})),
            )
            .origin(origin.clone());
        Ok((
            NewUser {
                email: email.clone(),
                display_name: display_name.into_inner(),
                password_hash,
                locale,
                welcome: None,
                mail,
            },
            audit,
        ))
    }

    /// Redeems an invitation: sets the password (registration rules) and confirms the address
    /// the invitation went to. The link works once, for 72 hours.
    pub async fn accept_invitation(
        &self,
        token: &str,
        password: String,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let (user, hash) = self
            .redeem_with_password(EmailTokenPurpose::Invitation, token, password, "password")
            .await?;
        let audit = user_event(user.id, "auth.invitation_accepted", "user", user.id, origin);
        self.store.change_password(user.id, hash, None, &audit).await?;
        if user.email_verified_at.is_none() {
            let verified = AuditEntry::new(Actor::user(user.id), action("auth.email_verified"), "user")
                .resource_id(user.id)
                .change(None, Some(json!({"email": user.email})))
                .origin(origin.clone());
            self.store
                .mark_email_verified(user.id, &user.email, &verified)
                .await?;
        }
        self.profiles.forget(&user.id);
        self.store.clear(&user.email).await?;
        Ok(())
    }
}
