//! Who is calling a device's settings endpoints: a user (session or personal access token), or
//! the device itself — by its device token (`Bearer stw_dev_…`, from registration or
//! enrollment), or, only with `STEWARD_LEGACY_DEVICE_AUTH=true`, the app's `X-API-Key` plus
//! `X-Device-Id` naming this very device. A suspended device is refused with `DEVICE_SUSPENDED`
//! either way.

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use steward_app::devices::DeviceCredentials;
use steward_domain::fleet::DEVICE_TOKEN_PREFIX;
use uuid::Uuid;

use crate::auth::extractor_support::{bearer_token, identify, scope_error, state};
use crate::auth::{DeviceScope, Scope};
use crate::error::ApiError;
use crate::state::AppState;
use steward_app::settings::SettingsCallerKind;

/// A settings caller; personal access tokens need scope `S`. On a route with a `{deviceId}`,
/// the caller's standing on that device is decided here too (404 for outsiders) — before the
/// body is parsed — for reading (`devices:read`) or writing (`devices:write`) as `S` says.
#[derive(Debug)]
pub struct SettingsCaller<S: DeviceScope> {
    pub kind: SettingsCallerKind,
    /// The standing on the path's device, when the route names one.
    pub access: Option<crate::settings::SettingsAccess>,
    scope: PhantomData<S>,
}

impl<S: DeviceScope + 'static> FromRequest for SettingsCaller<S> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(|value| value.trim().to_owned())
        };
        let api_key = header("x-api-key");
        let device_identifier = header("x-device-id");
        let token = bearer_token(request);
        let ip = crate::extractors::client_ip(request).map(|ip| ip.to_string());
        let state = state(request);
        let device = request.match_info().get("deviceId").map(str::parse::<Uuid>);
        let malformed = crate::extractors::malformed_path_id(request);
        let gate = crate::extractors::AuthGate::begin(request);
        Box::pin(async move {
            let _gate = gate;
            let state = state?;
            let kind = caller_kind::<S>(&state, token, api_key, device_identifier, ip).await?;
            // Any malformed id of the path is a bad request before the device is looked up,
            // whichever extractor finishes first.
            if let Some(malformed) = malformed {
                return Err(malformed.into());
            }
            let access = match device {
                Some(Ok(device)) => Some(
                    crate::settings::SettingsService::new(&state)
                        .access(kind, device, S::PERMISSION)
                        .await
                        .map_err(ApiError::from)?,
                ),
                Some(Err(_)) => return Err(ApiError::invalid("deviceId", "must be a UUID").into()),
                None => None,
            };
            Ok(SettingsCaller {
                kind,
                access,
                scope: PhantomData,
            })
        })
    }
}

/// Who calls: the device (its token, or the legacy key and identifier) or a user.
pub(crate) async fn caller_kind<S: Scope>(
    state: &actix_web::web::Data<AppState>,
    token: Option<String>,
    api_key: Option<String>,
    device_identifier: Option<String>,
    ip: Option<String>,
) -> Result<SettingsCallerKind, actix_web::Error> {
    let credentials = DeviceCredentials::new(&***state);
    if let Some(secret) = token.as_deref().filter(|t| t.starts_with(DEVICE_TOKEN_PREFIX)) {
        let device = credentials.device_token(secret).await.map_err(ApiError::from)?;
        crate::request_id::note_device(device);
        return Ok(SettingsCallerKind::Device(device));
    }
    if let Some(key) = api_key.filter(|_| token.is_none() || credentials.legacy_allowed()) {
        let identifier = device_identifier.unwrap_or_default();
        let device = credentials
            .legacy_device(&key, &identifier, ip)
            .await
            .map_err(ApiError::from)?;
        crate::request_id::note_device(device);
        return Ok(SettingsCallerKind::Device(device));
    }
    let principal = identify(state, token, ip).await?;
    if !principal.has_scope(S::NAME) {
        return Err(scope_error(S::NAME).into());
    }
    Ok(SettingsCallerKind::User(principal.user))
}
