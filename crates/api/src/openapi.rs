//! The OpenAPI document: everything but the paths is declared here; the paths are collected
//! from the routes themselves (utoipa-actix-web), so the spec cannot list a route the server
//! does not serve or miss one it does.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorCode, ErrorEnvelope, FieldError};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Steward",
        description = "User management and remote device control. Every response is an envelope: \
            `{\"success\": true, \"data\": …}` or `{\"success\": false, \"error\": {code, message, details, requestId}}`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(ErrorEnvelope, ErrorBody, ErrorCode, FieldError)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "auth", description = "Accounts, sign-in, tokens, sessions, password and email flows"),
        (name = "admin", description = "The admin API (users with a system role)"),
        (name = "fleet", description = "An organization's managed devices: list, actions, commands, import"),
    )
)]
pub struct ApiDoc;

/// The ways to authenticate: a user's or admin's bearer JWT, an enrolled device's device token,
/// and a legacy device's API key.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("RS256 access token from sign-in or refresh"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "deviceToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("stw_dev_…")
                    .description(Some("Opaque 90-day token an enrolled device received"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "API key of a legacy device or an integration",
            ))),
        );
    }
}
