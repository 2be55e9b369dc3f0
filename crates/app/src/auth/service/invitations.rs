//! Accounts an operator creates: with a password (the registration rules, a verification mail
//! to the address) or without one (an invitation mail whose link sets the password within 72
//! hours, once, and confirms the address).

use super::*;

/// What an operator gives for a new account.
#[derive(Debug, Clone)]
pub struct AdminNewAccount {
    pub email: String,
    pub display_name: String,
    /// `None`: invite the user to choose one.
    pub password: Option<String>,
}

impl<S: Store> AuthService<S> {
    /// Creates an account as `admin`: the account, its invitation or verification mail and
    /// the audit entry (`admin.user_created`) are one transaction.
    pub async fn admin_create_user(
        &self,
        admin: Uuid,
        account: AdminNewAccount,
        origin: &RequestOrigin,
    ) -> Result<UserRecord, AuthError> {
        let email = parse_email(&account.email)?;
        let display_name = parse_display_name(&account.display_name)?;
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
        let mail = self.email_token_mail(purpose, email.as_str());
        let id = Uuid::now_v7();
        let audit = AuditEntry::new(Actor::admin(admin), action("admin.user_created"), "user")
            .resource_id(id)
            .change(
                None,
                Some(json!({"email": email.as_str(), "displayName": display_name.as_str(), "invited": invited})),
            )
            .origin(origin.clone());
        self.store
            .create_user(
                NewUser {
                    email: email.clone(),
                    display_name: display_name.into_inner(),
                    password_hash,
                    welcome: None,
                    mail: Some(mail),
                },
                &audit,
            )
            .await
            .map_err(|error| match error {
                steward_domain::RepositoryError::Conflict(_) => AuthError::EmailTaken,
                other => other.into(),
            })
    }

    /// Redeems an invitation: sets the password (registration rules) and confirms the address
    /// the invitation went to. The link works once, for 72 hours.
    pub async fn accept_invitation(
        &self,
        token: &str,
        password: String,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        // Rules that need no account are checked before the single-use token is spent.
        let placeholder =
            EmailAddress::parse("invite@steward.invalid").map_err(|_| AuthError::InvalidEmailToken)?;
        check_password_rules(&password, &placeholder)
            .map_err(|reason| AuthError::WeakPassword(reason, "password"))?;
        let redeemed = self
            .store
            .redeem_email_token(EmailTokenPurpose::Invitation, &hash_token(token), Utc::now())
            .await?
            .ok_or(AuthError::InvalidEmailToken)?;
        let user = self
            .current_user(redeemed.user_id)
            .await
            .map_err(|_| AuthError::InvalidEmailToken)?;
        let email = parse_email(&user.email)?;
        self.check_new_password(Some(user.id), &password, &email, "password")
            .await?;
        let hash = self.hash_password(password).await?;
        let audit = user_event(user.id, "auth.invitation_accepted", "user", user.id, origin);
        self.store.change_password(user.id, hash, None, &audit).await?;
        if user.email == redeemed.email && user.email_verified_at.is_none() {
            let verified = AuditEntry::new(Actor::user(user.id), action("auth.email_verified"), "user")
                .resource_id(user.id)
                .change(None, Some(json!({"email": redeemed.email})))
                .origin(origin.clone());
            self.store
                .mark_email_verified(user.id, &redeemed.email, &verified)
                .await?;
        }
        self.profiles.forget(&user.id);
        self.store.clear(&user.email).await?;
        Ok(())
    }
}
