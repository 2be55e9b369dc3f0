//! Second factor: TOTP enrollment and its proof, recovery codes, removal, and the sign-in
//! step that turns a challenge (`mfaToken`) and a code into a session. Every code checked —
//! at sign-in, removal or regeneration — takes one of the account's allowed checks, so wrong
//! codes lock the account exactly like wrong passwords.

use std::sync::Arc;

use base64::Engine;
use steward_auth::mfa::{SecretBox, TotpCode, new_recovery_codes, new_totp_secret, normalize_recovery_code};
use steward_domain::mfa::{
    AdminMfaPolicy, AdminMfaVerdict, CHALLENGE_MINUTES, MfaChallenge, MfaEnrollment, MfaStatus,
    admin_mfa_verdict,
};

use super::*;
use crate::fleet::qr::{QrFormat, render_text};

/// Second-factor settings.
#[derive(Clone)]
pub struct MfaSettings {
    /// The issuer authenticator apps show (`STEWARD_MFA_ISSUER`; no `:`).
    pub issuer: String,
    /// Whether a federated sign-in (Google, Apple, OIDC) also asks for the code
    /// (`STEWARD_MFA_FOR_FEDERATED`).
    pub for_federated: bool,
    /// Seals TOTP secrets at rest.
    pub secrets: Arc<SecretBox>,
    /// Whether administrators must have a second factor (`STEWARD_ADMIN_MFA_REQUIRED`) and
    /// their grace period (`STEWARD_ADMIN_MFA_GRACE_HOURS`).
    pub admin: AdminMfaPolicy,
}

impl std::fmt::Debug for MfaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaSettings")
            .field("issuer", &self.issuer)
            .field("for_federated", &self.for_federated)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl Default for MfaSettings {
    /// A fresh random sealing key: secrets enrolled with it do not survive a restart. Servers
    /// configure a persistent key.
    fn default() -> Self {
        Self {
            issuer: "Steward".to_owned(),
            for_federated: false,
            admin: AdminMfaPolicy {
                required: false,
                grace: Duration::hours(24),
            },
            #[allow(clippy::expect_used)]
            secrets: Arc::new(
                SecretBox::from_base64(&SecretBox::generate_key()).expect("a generated key has 32 bytes"),
            ),
        }
    }
}

/// What sign-in answers: a session, or a challenge for the second factor.
#[derive(Debug, Clone)]
pub enum SignInOutcome {
    Complete(Box<IssuedTokens>),
    SecondFactor { mfa_token: String, expires_in: i64 },
}

/// The proof of the second factor.
#[derive(Debug, Clone)]
pub enum MfaProof {
    /// A six-digit code from the authenticator app.
    Code(String),
    /// One of the recovery codes (each works once).
    RecoveryCode(String),
}

/// A started TOTP enrollment: what the user puts into their authenticator app.
#[derive(Debug, Clone)]
pub struct TotpSetup {
    /// The secret in base32, for typing it in by hand.
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as a QR code: PNG bytes and SVG text.
    pub qr_png: Vec<u8>,
    pub qr_svg: String,
}

/// QR code images of the otpauth URI are at least this wide.
const QR_PIXELS: u32 = 256;

/// A recovery code's stored hash: SHA-256 over the account id and the code, so one leaked
/// table cannot be attacked for every account at once.
fn recovery_hash(user: Uuid, normalized: &str) -> String {
    hash_token(&format!("{user}:{normalized}"))
}

fn unix_now() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}

impl<S: Store> AuthService<S> {
    /// Second-factor settings (issuer, sealing key, federated sign-in).
    pub fn with_mfa(mut self, mfa: MfaSettings) -> Self {
        self.mfa = mfa;
        self
    }

    /// Readies admin MFA enforcement at start-up: with it on, the moment it was first
    /// switched on is recorded once for every instance (an instance starting with it off
    /// changes nothing, so a rolling deploy with stale settings cannot restart anyone's grace
    /// period).
    pub async fn prepare_admin_mfa(&self) -> Result<(), AuthError> {
        if self.mfa.admin.required {
            let since = self.store.admin_mfa_enforced_since(Utc::now()).await?;
            let _ = self.enforced_since.set(since);
        }
        Ok(())
    }

    /// The box secrets are sealed in at rest (TOTP secrets, webhook signing secrets).
    pub fn secret_box(&self) -> &Arc<SecretBox> {
        &self.mfa.secrets
    }

    /// Whether administrators must have a second factor (`STEWARD_ADMIN_MFA_REQUIRED`).
    pub fn admin_mfa_enforced(&self) -> bool {
        self.mfa.admin.required
    }

    /// Whether `user` may use the admin API as far as the second factor goes (always, with
    /// enforcement off).
    pub async fn admin_mfa_verdict(&self, user: Uuid) -> Result<AdminMfaVerdict, AuthError> {
        if !self.mfa.admin.required {
            return Ok(AdminMfaVerdict::Satisfied);
        }
        let since = match self.enforced_since.get() {
            Some(since) => *since,
            None => {
                let since = self.store.admin_mfa_enforced_since(Utc::now()).await?;
                *self.enforced_since.get_or_init(|| since)
            }
        };
        let facts = self.store.admin_mfa_facts(user).await?;
        Ok(admin_mfa_verdict(self.mfa.admin, since, &facts, Utc::now()))
    }

    /// Tells the account's holder by mail that its second factor changed (so a change they did
    /// not make does not go unnoticed). The change is done; a mail that cannot be queued is
    /// logged, not reported as the change failing.
    pub(crate) async fn mfa_notice(&self, user: &UserRecord, event: &str, what: &str) {
        let mail = self.settings.mail.render(
            crate::mail::MailKind::MfaChanged,
            &user.email,
            user.locale.as_deref(),
            json!({"change": what, "event": event}),
        );
        let queued = match mail {
            Ok(mail) => self
                .store
                .enqueue_email(&mail)
                .await
                .map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = queued {
            tracing::warn!(%error, "could not queue the second-factor notice");
        }
    }

    pub(super) async fn has_second_factor(&self, user: Uuid) -> Result<bool, AuthError> {
        Ok(self
            .store
            .mfa_enrollment(user)
            .await?
            .is_some_and(|enrollment| enrollment.is_active()))
    }

    /// Whether `user` has a second factor that a provider sign-in would not ask for.
    pub(crate) async fn federated_skips_second_factor(&self, user: Uuid) -> Result<bool, AuthError> {
        Ok(!self.mfa.for_federated && self.has_second_factor(user).await?)
    }

    /// Whether a federated sign-in of `user` must show the second factor too.
    pub(crate) async fn federated_needs_second_factor(&self, user: Uuid) -> Result<bool, AuthError> {
        Ok(self.mfa.for_federated && self.has_second_factor(user).await?)
    }

    fn totp_for(&self, user: &UserRecord, enrollment: &MfaEnrollment) -> Result<TotpCode, AuthError> {
        let secret = self
            .mfa
            .secrets
            .open(&enrollment.secret_sealed, user.id.as_bytes())
            .map_err(|error| {
                tracing::error!(user = %user.id, %error, "a TOTP secret does not open: STEWARD_MFA_ENCRYPTION_KEY changed?");
                AuthError::MfaState(
                    "this server cannot check codes of this account (its MFA key changed): use a recovery code",
                )
            })?;
        TotpCode::new(&secret, &self.mfa.issuer, &user.email)
            .map_err(|error| AuthError::Hashing(error.to_string()))
    }

    /// Opens the challenge of a sign-in whose password was right.
    pub(crate) async fn mfa_challenge(&self, user: Uuid) -> Result<SignInOutcome, AuthError> {
        let challenge = MfaChallenge::new(user, Utc::now());
        let mfa_token = random_token(32);
        self.store
            .create_mfa_challenge(&challenge, hash_token(&mfa_token))
            .await?;
        Ok(SignInOutcome::SecondFactor {
            mfa_token,
            expires_in: CHALLENGE_MINUTES * 60,
        })
    }

    /// The account's second-factor state.
    pub async fn mfa_status(&self, user: Uuid) -> Result<MfaStatus, AuthError> {
        let enrollment = self.store.mfa_enrollment(user).await?;
        let enabled = enrollment.as_ref().is_some_and(MfaEnrollment::is_active);
        Ok(MfaStatus {
            enabled,
            pending: enrollment.as_ref().is_some_and(|e| !e.is_active()),
            confirmed_at: enrollment.and_then(|e| e.confirmed_at),
            recovery_codes_left: if enabled {
                self.store.recovery_codes_left(user).await?
            } else {
                0
            },
        })
    }

    /// Starts (or restarts) a TOTP enrollment: a new secret, pending until
    /// [`Self::confirm_totp`] sees a code of it. Refused while a second factor is enabled.
    pub async fn begin_totp(&self, user: Uuid, origin: &RequestOrigin) -> Result<TotpSetup, AuthError> {
        let record = self.current_user(user).await?;
        if self.has_second_factor(user).await? {
            return Err(AuthError::MfaState(
                "a second factor is already enabled; remove it before enrolling a new one",
            ));
        }
        let secret = new_totp_secret();
        let sealed = self
            .mfa
            .secrets
            .seal(&secret, user.as_bytes())
            .map_err(|error| AuthError::Hashing(error.to_string()))?;
        let totp = TotpCode::new(&secret, &self.mfa.issuer, &record.email)
            .map_err(|error| AuthError::Hashing(error.to_string()))?;
        let otpauth_uri = totp
            .otpauth_uri()
            .map_err(|error| AuthError::Hashing(error.to_string()))?;
        let (qr_png, _) = render_text(&otpauth_uri, QrFormat::Png, QR_PIXELS)
            .map_err(|_| AuthError::Hashing("QR".into()))?;
        let (qr_svg, _) = render_text(&otpauth_uri, QrFormat::Svg, QR_PIXELS)
            .map_err(|_| AuthError::Hashing("QR".into()))?;
        let audit = user_event(user, "auth.mfa_enrolled", "user", user, origin)
            .change(None, Some(json!({"method": "totp", "state": "pending"})));
        self.store
            .begin_mfa_enrollment(user, sealed, Utc::now(), &audit)
            .await
            .map_err(|error| match error {
                steward_domain::RepositoryError::Conflict(_) => AuthError::MfaState(
                    "a second factor is already enabled; remove it before enrolling a new one",
                ),
                other => other.into(),
            })?;
        Ok(TotpSetup {
            secret: totp.secret_base32(),
            otpauth_uri,
            qr_png,
            qr_svg: String::from_utf8_lossy(&qr_svg).into_owned(),
        })
    }

    /// Proves the pending enrollment with a code: the second factor is on from now, and the
    /// answer holds the ten recovery codes (shown this once, stored hashed).
    pub async fn confirm_totp(
        &self,
        user: Uuid,
        code: &str,
        origin: &RequestOrigin,
    ) -> Result<Vec<String>, AuthError> {
        let record = self.current_user(user).await?;
        let enrollment = self.store.mfa_enrollment(user).await?.ok_or(AuthError::MfaState(
            "no enrollment is pending: start with POST /api/v1/auth/mfa/totp",
        ))?;
        if enrollment.is_active() {
            return Err(AuthError::MfaState("the second factor is already enabled"));
        }
        let email = parse_email(&record.email)?;
        let totp = self.totp_for(&record, &enrollment)?;
        self.reserve_check(&email).await?;
        let Some(step) = totp.matching_step(code, unix_now()) else {
            self.record_failed_check(&email, Some(user), "auth.mfa_failed", origin)
                .await?;
            return Err(AuthError::InvalidMfaCode);
        };
        let codes = new_recovery_codes();
        let hashes = codes
            .iter()
            .map(|code| recovery_hash(user, &normalize_recovery_code(code)))
            .collect();
        let audit = user_event(user, "auth.mfa_verified", "user", user, origin).change(
            None,
            Some(json!({"method": "totp", "recoveryCodes": codes.len()})),
        );
        let confirmed = self
            .store
            .confirm_mfa_enrollment(
                user,
                &enrollment.secret_sealed,
                i64::try_from(step).unwrap_or(i64::MAX),
                hashes,
                Utc::now(),
                &audit,
            )
            .await;
        self.store.release_attempt(email.as_str()).await?;
        let confirmed = confirmed?;
        if !confirmed {
            return Err(AuthError::MfaState(
                "the enrollment changed meanwhile: start again with POST /api/v1/auth/mfa/totp",
            ));
        }
        self.mfa_notice(
            &record,
            "added",
            "A second factor (an authenticator app) was added to your account: sign-in now asks for its code.",
        )
        .await;
        Ok(codes)
    }

    /// Checks a proof of the second factor of `user` against one of the account's allowed
    /// checks. A wrong code, a replayed one (its step already used) and a used recovery
    /// code are failures like a wrong password.
    pub(crate) async fn check_second_factor(
        &self,
        user: &UserRecord,
        proof: &MfaProof,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let enrollment = self
            .store
            .mfa_enrollment(user.id)
            .await?
            .filter(MfaEnrollment::is_active)
            .ok_or(AuthError::MfaState("no second factor is enabled"))?;
        let email = parse_email(&user.email)?;
        // Opened before a check is reserved: an unreadable secret (a lost key) is an error that
        // costs the account nothing, and a recovery code still works.
        let totp = match proof {
            MfaProof::Code(_) => Some(self.totp_for(user, &enrollment)?),
            MfaProof::RecoveryCode(_) => None,
        };
        self.reserve_check(&email).await?;
        let accepted = match self.try_proof(user, totp.as_ref(), proof, origin).await {
            Ok(accepted) => accepted,
            Err(error) => {
                // The check did not happen: give the reservation back.
                let _ = self.store.release_attempt(email.as_str()).await;
                return Err(error);
            }
        };
        if !accepted {
            self.record_failed_check(&email, Some(user.id), "auth.mfa_failed", origin)
                .await?;
            return Err(AuthError::InvalidMfaCode);
        }
        self.store.record_success(email.as_str()).await?;
        Ok(())
    }

    /// Whether `proof` is right and unused; marks it used.
    async fn try_proof(
        &self,
        user: &UserRecord,
        totp: Option<&TotpCode>,
        proof: &MfaProof,
        origin: &RequestOrigin,
    ) -> Result<bool, AuthError> {
        Ok(match (proof, totp) {
            (MfaProof::Code(code), Some(totp)) => match totp.matching_step(code, unix_now()) {
                Some(step) => {
                    self.store
                        .claim_mfa_step(user.id, i64::try_from(step).unwrap_or(i64::MAX))
                        .await?
                }
                None => false,
            },
            (MfaProof::Code(_), None) => false,
            (MfaProof::RecoveryCode(code), _) => {
                let normalized = normalize_recovery_code(code);
                let used = !normalized.is_empty()
                    && self
                        .store
                        .use_recovery_code(user.id, &recovery_hash(user.id, &normalized), Utc::now())
                        .await?;
                if used {
                    let left = self.store.recovery_codes_left(user.id).await?;
                    let audit = user_event(user.id, "auth.mfa_recovery_code_used", "user", user.id, origin)
                        .change(None, Some(json!({"recoveryCodesLeft": left})));
                    self.store.record(&audit).await?;
                }
                used
            }
        })
    }

    /// Completes a sign-in that waits for its second factor: the challenge is spent and a
    /// session opens. A wrong code leaves the challenge open (until it expires or the
    /// account locks).
    pub async fn complete_mfa_login(
        &self,
        mfa_token: &str,
        proof: MfaProof,
        origin: &RequestOrigin,
    ) -> Result<IssuedTokens, AuthError> {
        let challenge = self
            .store
            .find_mfa_challenge(&hash_token(mfa_token), Utc::now())
            .await?
            .ok_or(AuthError::InvalidMfaToken)?;
        let user = self
            .store
            .find_user(challenge.user_id)
            .await?
            .filter(UserRecord::is_active)
            .ok_or(AuthError::InvalidMfaToken)?;
        self.check_second_factor(&user, &proof, origin).await?;
        if !self.store.spend_mfa_challenge(challenge.id, Utc::now()).await? {
            return Err(AuthError::InvalidMfaToken);
        }
        self.open_session(user, origin, "auth.login_succeeded").await
    }

    /// Removes the second factor: needs the password (when the account has one) and a
    /// current code or a recovery code.
    pub async fn disable_mfa(
        &self,
        user: Uuid,
        password: Option<String>,
        proof: Option<MfaProof>,
        origin: &RequestOrigin,
    ) -> Result<(), AuthError> {
        let record = self.current_user(user).await?;
        if !self.has_second_factor(user).await? {
            // A pending enrollment is simply dropped.
            let audit = user_event(user, "auth.mfa_disabled", "user", user, origin)
                .change(Some(json!({"state": "pending"})), None);
            return if self.store.remove_mfa(user, &audit).await? {
                Ok(())
            } else {
                Err(AuthError::MfaState("no second factor is enabled"))
            };
        }
        let proof = proof.ok_or(AuthError::Invalid {
            field: "code",
            message: "a current code or a recovery code is needed".to_owned(),
        })?;
        if record.password_hash.is_some() {
            let email = parse_email(&record.email)?;
            // The failures stay counted: a right password must not reset the allowance of the
            // code guessed next.
            let verification = self
                .throttled_verify_then(
                    &email,
                    password.unwrap_or_default(),
                    record.password_hash.clone(),
                    Some(user),
                    origin,
                    false,
                )
                .await?;
            if !verification.matches {
                return Err(AuthError::InvalidCredentials);
            }
        }
        self.check_second_factor(&record, &proof, origin).await?;
        let audit = user_event(user, "auth.mfa_disabled", "user", user, origin)
            .change(Some(json!({"method": "totp"})), None);
        self.store.remove_mfa(user, &audit).await?;
        self.mfa_notice(
            &record,
            "removed",
            "The second factor of your account was removed: sign-in asks for the password alone.",
        )
        .await;
        Ok(())
    }

    /// Removes the second factor of the account with `email` and ends its sessions, from the
    /// operator's shell (`steward admin reset-mfa`): the break-glass path when nobody who could
    /// reset it can sign in.
    pub async fn reset_mfa_by_email(&self, email: &str) -> Result<UserRecord, AuthError> {
        let address = parse_email(email)?;
        let user = self
            .store
            .find_user_by_email(&address)
            .await?
            .ok_or(AuthError::NotFound)?;
        if !self.has_second_factor(user.id).await? {
            return Err(AuthError::MfaState("this account has no second factor"));
        }
        let audit = AuditEntry::new(Actor::system(), action("admin.mfa_reset"), "user")
            .resource_id(user.id)
            .change(
                Some(json!({"mfa": "enabled"})),
                Some(json!({"mfa": null, "via": "cli"})),
            );
        if !self.store.remove_mfa(user.id, &audit).await? {
            return Err(AuthError::MfaState("this account has no second factor"));
        }
        let ended =
            AuditEntry::new(Actor::system(), action("admin.sessions_revoked"), "user").resource_id(user.id);
        self.store
            .revoke_user_sessions(user.id, "mfa_reset", &ended)
            .await?;
        self.mfa_notice(
            &user,
            "reset_by_operator",
            "An operator removed the second factor of your account: sign-in asks for the password alone.",
        )
        .await;
        Ok(user)
    }

    /// Ten new recovery codes in place of the old ones; needs a current code.
    pub async fn regenerate_recovery_codes(
        &self,
        user: Uuid,
        proof: MfaProof,
        origin: &RequestOrigin,
    ) -> Result<Vec<String>, AuthError> {
        let record = self.current_user(user).await?;
        self.check_second_factor(&record, &proof, origin).await?;
        let codes = new_recovery_codes();
        let hashes = codes
            .iter()
            .map(|code| recovery_hash(user, &normalize_recovery_code(code)))
            .collect();
        let audit = user_event(user, "auth.mfa_recovery_codes_regenerated", "user", user, origin)
            .change(None, Some(json!({"recoveryCodes": codes.len()})));
        self.store
            .replace_recovery_codes(user, hashes, Utc::now(), &audit)
            .await?;
        Ok(codes)
    }
}

/// The PNG of a QR code as a `data:` URL.
pub fn png_data_url(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}
