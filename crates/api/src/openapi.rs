//! The OpenAPI document: everything but the paths is declared here; the paths are collected
//! from the routes themselves (utoipa-actix-web), so the spec cannot list a route the server
//! does not serve or miss one it does.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorCode, ErrorEnvelope, FieldError, QuotaView};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Steward",
        description = "User management and remote device control. Every response is an envelope: \
            `{\"success\": true, \"data\": …}` or `{\"success\": false, \"error\": {code, message, details, requestId}}`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(ErrorEnvelope, ErrorBody, ErrorCode, FieldError, QuotaView)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "auth", description = "Accounts, sign-in, tokens, sessions, password and email flows"),
        (name = "admin", description = "The admin API (users with a system role)"),
        (name = "fleet", description = "An organization's managed devices: list, actions, commands, import"),
        (name = "jobs", description = "Background jobs: large imports run asynchronously with progress, cancel and result"),
        (name = "webhooks", description = "Webhook subscriptions to Steward's events: signed deliveries, retries, delivery log, redelivery and test pings"),
        (name = "notifications", description = "Operators' notifications: what the security rules raised, read marks and mail preferences"),
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
                    .description(Some(
                        "A device's own opaque 90-day token, answered by its registration or enrollment",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "The app's API key: needed to register a device; with X-Device-Id it acts as a device only when STEWARD_LEGACY_DEVICE_AUTH=true",
            ))),
        );
    }
}

/// Answers every operation can give beyond its own, declared once as shared responses and
/// attached where they apply, so generated clients and contract tests know them:
/// 400 (a malformed path, query or body — every route, since a `%00` anywhere is refused),
/// 401 and 403 (operations with a security requirement: no or a bad token; a token without
/// the scope or a role without the permission), 404 (operations with path parameters), 413
/// and 415 (operations with a body), 429 (the auth endpoints: rate limits and the account
/// lock), 503 (the database is unreachable: every operation but liveness and metrics).
/// Responses that lack a description get their status's reason phrase.
pub fn complete(spec: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

    let shared = [
        (
            "400",
            "BadRequest",
            "A path, query or body that does not parse or breaks a rule (`VALIDATION_ERROR`)",
        ),
        ("401", "Unauthorized", "No valid token (`UNAUTHORIZED`)"),
        (
            "403",
            "Forbidden",
            "Not allowed: a role without the permission or a token without the scope (`FORBIDDEN`)",
        ),
        (
            "404",
            "NotFound",
            "No such resource, or one the caller may not see (`NOT_FOUND`)",
        ),
        (
            "413",
            "PayloadTooLarge",
            "The body is over the limit (`PAYLOAD_TOO_LARGE`)",
        ),
        (
            "415",
            "UnsupportedMediaType",
            "The body is not `application/json` (`UNSUPPORTED_MEDIA_TYPE`)",
        ),
        (
            "429",
            "TooManyRequests",
            "Rate limited or the account is locked; see `Retry-After` (`RATE_LIMITED`, `ACCOUNT_LOCKED`)",
        ),
        (
            "503",
            "ServiceUnavailable",
            "The database is unreachable; see `Retry-After` (`SERVICE_UNAVAILABLE`)",
        ),
    ];
    let components = spec.components.get_or_insert_with(Default::default);
    for (_, name, description) in shared {
        components.responses.entry(name.to_owned()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                            .build(),
                    )
                    .build(),
            )
        });
    }
    for (path, item) in spec.paths.paths.iter_mut() {
        let operations = [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ];
        for operation in operations.into_iter().flatten() {
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            let has_path_params = path.contains('{');
            let has_body = operation.request_body.is_some();
            let liveness = path == "/health" || path == "/metrics";
            let auth = path.starts_with("/api/v1/auth/");
            for (status, name, _) in shared {
                let applies = match status {
                    "400" => true,
                    "401" | "403" => secured,
                    "404" => has_path_params,
                    "413" | "415" => has_body,
                    "429" => auth,
                    "503" => !liveness,
                    _ => false,
                };
                if applies {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
            for (status, response) in operation.responses.responses.iter_mut() {
                if let RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    response.description = status
                        .parse::<u16>()
                        .ok()
                        .and_then(|code| actix_web::http::StatusCode::from_u16(code).ok())
                        .and_then(|code| code.canonical_reason())
                        .unwrap_or("Response")
                        .to_owned();
                }
            }
        }
    }
}
