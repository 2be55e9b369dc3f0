//! A device's own credentials: its device token (`stw_dev_…`, from registration or
//! enrollment), the application's `X-API-Key` (registration only), and — only where an operator
//! allows it — the legacy `X-API-Key` + `X-Device-Id`. A suspended device may not act as
//! itself until its organization resumes it. Lookups go through the device credential cache.

use steward_domain::devices::ApiKeyRecord;
use steward_domain::fleet::DeviceStatus;
use uuid::Uuid;

use crate::error::{AppError, ErrorKind};
use crate::steward::{Steward, Store};

pub struct DeviceCredentials<'a, S> {
    steward: &'a Steward<S>,
}

impl<'a, S: Store> DeviceCredentials<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// Refuses a suspended device.
    pub async fn ensure_active(&self, device: Uuid) -> Result<(), AppError> {
        let status = self
            .steward
            .device_auth
            .status(&self.steward.store, device)
            .await?;
        if status == DeviceStatus::Suspended {
            return Err(AppError::new(
                ErrorKind::DeviceSuspended,
                "this device is suspended by its organization",
            ));
        }
        Ok(())
    }

    /// The active device a device token speaks for.
    pub async fn device_token(&self, secret: &str) -> Result<Uuid, AppError> {
        let grant = self
            .steward
            .device_auth
            .device_token(&self.steward.store, secret)
            .await?
            .ok_or_else(|| {
                AppError::new(
                    ErrorKind::Unauthenticated,
                    "the device token is invalid, expired or revoked",
                )
            })?;
        self.ensure_active(grant.device_id).await?;
        Ok(grant.device_id)
    }

    /// The live application API key with this secret.
    pub async fn api_key(&self, secret: &str, ip: Option<String>) -> Result<ApiKeyRecord, AppError> {
        let refused = || AppError::new(ErrorKind::Unauthenticated, "a valid X-API-Key is required");
        if secret.is_empty() {
            return Err(refused());
        }
        self.steward
            .device_auth
            .api_key(&self.steward.store, secret, ip)
            .await?
            .ok_or_else(refused)
    }

    /// Whether the legacy `X-API-Key` + `X-Device-Id` may act as a device here.
    pub fn legacy_allowed(&self) -> bool {
        self.steward.device_auth.legacy_auth()
    }

    /// The active device named by `identifier` under a live API key; only when the operator
    /// allows the legacy scheme (`Unauthenticated` otherwise).
    pub async fn legacy_device(
        &self,
        key: &str,
        identifier: &str,
        ip: Option<String>,
    ) -> Result<Uuid, AppError> {
        if !self.legacy_allowed() {
            return Err(AppError::new(
                ErrorKind::Unauthenticated,
                "X-API-Key + X-Device-Id no longer act as a device: send the device token from \
                 registration or enrollment as `Authorization: Bearer stw_dev_…`",
            ));
        }
        let refused = || {
            AppError::new(
                ErrorKind::Unauthenticated,
                "a valid X-API-Key and X-Device-Id are required",
            )
        };
        self.steward
            .device_auth
            .api_key(&self.steward.store, key, ip)
            .await?
            .ok_or_else(refused)?;
        if identifier.is_empty() {
            return Err(refused());
        }
        let device = self
            .steward
            .device_auth
            .device_id(&self.steward.store, identifier)
            .await?
            .ok_or_else(|| AppError::not_found("no such device"))?;
        self.ensure_active(device).await?;
        Ok(device)
    }
}
