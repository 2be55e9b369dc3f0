//! Enrollment tokens and their QR codes, enrollment, device tokens.

use super::*;

/// What a device receives when it enrolls.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentOutcome {
    pub device_id: Uuid,
    pub organization_id: Uuid,
    /// Send as `Authorization: Bearer …` on the device API. Shown once.
    pub device_token: String,
    pub device_token_expires_at: DateTime<Utc>,
    /// Whether an existing device was adopted (rather than created).
    pub adopted: bool,
    pub settings: DeviceSettingsView,
    /// The enrollment token's free-form data.
    pub additional_data: Option<Value>,
}

/// A new device token.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceTokenView {
    pub device_id: Uuid,
    pub device_token: String,
    pub expires_at: DateTime<Utc>,
}

impl<S: Store> FleetService<'_, S> {
    /// The token's secret, derived from its id (never stored).
    fn token_secret(&self, token: Uuid) -> Secret {
        Secret::from_parts(
            ENROLLMENT_TOKEN_PREFIX,
            &self.steward.auth.enrollment_secret(token),
        )
    }
    pub async fn create_token(
        &self,
        organization: Uuid,
        user: Uuid,
        spec: EnrollmentTokenSpec,
        origin: &RequestOrigin,
    ) -> Result<(EnrollmentToken, String), AppError> {
        self.check_references(organization, spec.policy_id, spec.group_id)
            .await?;
        let id = Uuid::now_v7();
        let secret = self.token_secret(id);
        let token = EnrollmentToken {
            id,
            organization_id: organization,
            name: spec.name,
            prefix: secret.prefix.clone(),
            policy_id: spec.policy_id,
            group_id: spec.group_id,
            max_uses: spec.max_uses,
            use_count: 0,
            expires_at: spec.expires_at,
            revoked_at: None,
            created_by: Some(user),
            created_at: Utc::now(),
            note: spec.note,
            additional_data: spec.additional_data,
        };
        let entry = admin_audit(
            user,
            "enrollment_token.created",
            "enrollment_token",
            organization,
            origin,
        )
        .resource_id(id)
        .change(
            None,
            Some(json!({
                "name": token.name,
                "policyId": token.policy_id,
                "groupId": token.group_id,
                "maxUses": token.max_uses,
                "expiresAt": token.expires_at,
            })),
        );
        self.steward
            .store
            .create_enrollment_token(&token, &secret.hash, &entry)
            .await?;
        Ok((token, secret.secret))
    }
    pub async fn tokens(&self, organization: Uuid) -> Result<Vec<EnrollmentToken>, AppError> {
        Ok(self.steward.store.enrollment_tokens(organization).await?)
    }
    /// Revokes a live token; devices already enrolled keep their device tokens.
    pub async fn revoke_token(
        &self,
        organization: Uuid,
        id: Uuid,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let entry = admin_audit(
            user,
            "enrollment_token.revoked",
            "enrollment_token",
            organization,
            origin,
        )
        .resource_id(id);
        self.steward
            .store
            .revoke_enrollment_token(organization, id, Utc::now(), &entry)
            .await
            .map_err(|error| match error {
                RepositoryError::NotFound => AppError::not_found("no such active enrollment token"),
                other => other.into(),
            })
    }
    pub async fn token(&self, organization: Uuid, id: Uuid) -> Result<EnrollmentToken, AppError> {
        self.steward
            .store
            .find_enrollment_token(organization, id)
            .await?
            .ok_or_else(|| AppError::not_found("no such enrollment token"))
    }
    /// The QR image of a live token (audited, as it shows the secret).
    pub async fn qr(
        &self,
        organization: Uuid,
        id: Uuid,
        format: QrFormat,
        size: u32,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(Vec<u8>, &'static str), AppError> {
        let token = self.token(organization, id).await?;
        if let Some(refusal) = token.refusal(Utc::now()) {
            return Err(AppError::new(
                ErrorKind::Conflict,
                format!("no QR code for a token that cannot be used: {refusal}"),
            ));
        }
        // The image shows the secret: every rendering is audited.
        let entry = admin_audit(
            user,
            "enrollment_token.qr_rendered",
            "enrollment_token",
            organization,
            origin,
        )
        .resource_id(id);
        self.steward.store.record(&entry).await?;
        let secret = self.token_secret(id);
        let payload = EnrollmentPayload {
            v: 1,
            server_url: self.steward.auth.public_url(),
            organization_id: organization,
            enrollment_token: &secret.secret,
        };
        qr::render(&payload, format, size)
    }
    pub async fn enroll(
        &self,
        secret: &str,
        enrollment: Enrollment,
        origin: &RequestOrigin,
    ) -> Result<EnrollmentOutcome, AppError> {
        let (device_token, stored) = new_device_token();
        let entry = AuditEntry::new(Actor::system(), AuditAction::known("device.enrolled"), "device")
            .origin(origin.clone());
        let enrolled = self
            .steward
            .store
            .enroll(
                &hash_token(secret.trim()),
                &enrollment,
                &stored,
                Utc::now(),
                &entry,
            )
            .await
            .map_err(|error| match error {
                // A token holder learns that the organization is full, not its numbers.
                steward_domain::RuleStoreError::Rule(steward_domain::RuleError::QuotaExceeded(_)) => {
                    AppError::new(
                        crate::error::ErrorKind::QuotaExceeded,
                        "the organization cannot take more devices; ask its administrator",
                    )
                }
                other => other.into(),
            })??;
        self.forget(&[enrolled.device_id]);
        self.steward.device_auth.forget_device(enrolled.device_id);
        let (settings, _) = SettingsService::new(self.steward)
            .effective(enrolled.device_id, false)
            .await?;
        Ok(EnrollmentOutcome {
            device_id: enrolled.device_id,
            organization_id: enrolled.organization_id,
            device_token,
            device_token_expires_at: stored.expires_at,
            adopted: enrolled.adopted,
            settings,
            additional_data: enrolled.additional_data,
        })
    }
    /// A new device token for a live one (which stops working).
    pub async fn refresh_device_token(
        &self,
        secret: &str,
        origin: &RequestOrigin,
    ) -> Result<DeviceTokenView, AppError> {
        let secret = secret.trim();
        let (device_token, stored) = new_device_token();
        let refused = || {
            AppError::new(
                ErrorKind::Unauthenticated,
                "the device token is invalid, expired or revoked",
            )
        };
        let current = self
            .steward
            .store
            .device_token(&hash_token(secret), Utc::now())
            .await?
            .ok_or_else(refused)?;
        if self
            .steward
            .device_auth
            .status(&self.steward.store, current.device_id)
            .await?
            == DeviceStatus::Suspended
        {
            return Err(AppError::new(
                ErrorKind::DeviceSuspended,
                "this device is suspended by its organization",
            ));
        }
        let entry = AuditEntry::new(
            Actor::device(current.device_id),
            AuditAction::known("device.token_refreshed"),
            "device",
        )
        .origin(origin.clone());
        let device = self
            .steward
            .store
            .refresh_device_token(&hash_token(secret), &stored, Utc::now(), &entry)
            .await?
            .ok_or_else(refused)?;
        self.steward.device_auth.forget_device(device);
        Ok(DeviceTokenView {
            device_id: device,
            device_token,
            expires_at: stored.expires_at,
        })
    }
}
