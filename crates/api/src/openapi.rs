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
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    components(schemas(ErrorEnvelope, ErrorBody, ErrorCode, FieldError, QuotaView)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "auth", description = "Accounts, sign-in, tokens, sessions, password and email flows"),
        (name = "users", description = "A user's devices: listing, linking and unlinking, transfers between accounts"),
        (name = "groups", description = "Family and team groups: members and roles, invites, ownership transfer"),
        (name = "devices", description = "Devices: registration with the app's API key, enrollment, device tokens, command acknowledgement"),
        (name = "settings", description = "A device's remote settings: effective values, locks, unlock requests, sync and compliance"),
        (name = "organizations", description = "B2B organizations: members, policies, enrollment tokens, quotas"),
        (name = "admin", description = "The admin API (users with a system role)"),
        (name = "fleet", description = "An organization's managed devices: list, actions, commands, import"),
        (name = "jobs", description = "Background jobs: large imports run asynchronously with progress, cancel and result"),
        (name = "webhooks", description = "Webhook subscriptions to Steward's events: signed deliveries, retries, delivery log, redelivery and test pings"),
        (name = "notifications", description = "Operators' notifications: what the security rules raised, read marks and mail preferences"),
        (name = "device-events", description = "Device events: what devices report and what Steward did to them; query by cursor, counts, live streams (server-sent events), retention"),
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
        components.add_security_scheme(
            "legacyDeviceId",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Device-Id",
                "The registered deviceId a legacy device acts as, with X-API-Key; honoured only when STEWARD_LEGACY_DEVICE_AUTH=true (unsafe; devices should use their device token)",
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
            // Public operations say so, so a linter can tell them from ones that forgot.
            operation.security.get_or_insert_with(Vec::new);
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

/// What the typed builders cannot say, applied to the rendered document: a server entry;
/// envelopes whose `data` refers to the named schema instead of a copy of it (so generated
/// clients name the type, and no schema is left unused); `success` as the constant it is in
/// each envelope, so clients can tell the two apart; a short summary and the whole text as the
/// description of every operation (utoipa puts a one-paragraph doc comment in `summary`).
pub fn polish(spec: &utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut document = serde_json::to_value(spec).unwrap_or_default();
    polish_document(&mut document);
    document
}

fn polish_document(document: &mut serde_json::Value) {
    use serde_json::{Value, json};

    document["servers"] = json!([{
        "url": "/",
        "description": "The server that serves this document (Steward binds 127.0.0.1:8080 unless `STEWARD_BIND` says otherwise)"
    }]);
    if let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        let named: std::collections::BTreeMap<String, Value> = schemas.clone().into_iter().collect();
        for (name, schema) in schemas.iter_mut() {
            let (inner, list) = if let Some(inner) = name.strip_prefix("ListEnvelope_") {
                (inner, true)
            } else if let Some(inner) = name.strip_prefix("Envelope_") {
                match inner.strip_prefix("Vec_") {
                    Some(inner) => (inner, true),
                    None => (inner, false),
                }
            } else {
                if name == "ErrorEnvelope" {
                    set_success(schema, false);
                } else if name.ends_with("PageEnvelope") {
                    // The cursor pages' own envelopes (device events, the audit trail).
                    set_success(schema, true);
                }
                continue;
            };
            set_success(schema, true);
            let Some(target) = named.get(inner) else {
                continue;
            };
            let reference = json!({ "$ref": format!("#/components/schemas/{inner}") });
            let slot = if list {
                schema.pointer_mut("/properties/data/items")
            } else {
                schema.pointer_mut("/properties/data")
            };
            // Only a copy of that very schema (two types of one name would differ).
            if let Some(slot) = slot
                && slot == target
            {
                *slot = reference;
            }
        }
    }
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for operation in item.values_mut() {
                let Some(operation) = operation.as_object_mut() else {
                    continue;
                };
                if operation.contains_key("description") {
                    continue;
                }
                let Some(text) = operation.get("summary").and_then(Value::as_str) else {
                    continue;
                };
                let description = unwrap_lines(text);
                let summary = first_sentence(&description);
                operation.insert("summary".to_owned(), Value::String(summary));
                operation.insert("description".to_owned(), Value::String(description));
            }
        }
    }
    crate::request_examples::add_request_examples(document);
}

/// `success` in an envelope: always `value`.
fn set_success(schema: &mut serde_json::Value, value: bool) {
    if let Some(success) = schema.pointer_mut("/properties/success")
        && let Some(success) = success.as_object_mut()
    {
        success.insert("enum".to_owned(), serde_json::json!([value]));
    }
}

/// A doc comment's lines joined into paragraphs.
fn unwrap_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            paragraph
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The text up to the first full stop, colon or semicolon outside code and parentheses,
/// without it.
fn first_sentence(text: &str) -> String {
    let (mut code, mut depth) = (false, 0_u32);
    let chars: Vec<char> = text.chars().collect();
    for (index, &c) in chars.iter().enumerate() {
        match c {
            '`' => code = !code,
            '(' if !code => depth += 1,
            ')' if !code => depth = depth.saturating_sub(1),
            '.' | ':' | ';' if !code && depth == 0 => {
                let ends = chars.get(index + 1).is_none_or(|next| next.is_whitespace());
                if ends {
                    return chars[..index].iter().collect::<String>().trim().to_owned();
                }
            }
            '\n' if !code => return chars[..index].iter().collect::<String>().trim().to_owned(),
            _ => {}
        }
    }
    text.trim().trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_the_first_sentence_outside_code_and_parentheses() {
        assert_eq!(
            first_sentence("Lock an account (`users:lock`): sign-in is refused. More."),
            "Lock an account (`users:lock`)"
        );
        assert_eq!(first_sentence("One group. Outsiders get 404."), "One group");
        assert_eq!(
            first_sentence("Set `a.b` (see e.g. the docs)"),
            "Set `a.b` (see e.g. the docs)"
        );
        assert_eq!(
            unwrap_lines("Update the profile. Honours\n`If-Match`."),
            "Update the profile. Honours `If-Match`."
        );
    }

    #[test]
    fn envelopes_refer_to_their_data_schema_and_fix_success() {
        let document = crate::openapi();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for (name, schema) in schemas {
            let inner = name
                .strip_prefix("ListEnvelope_")
                .or_else(|| name.strip_prefix("Envelope_Vec_"))
                .or_else(|| name.strip_prefix("Envelope_"));
            let Some(inner) = inner else {
                continue;
            };
            let data = &schema["properties"]["data"];
            let data = if data["type"] == "array" {
                &data["items"]
            } else {
                data
            };
            if schemas.contains_key(inner) {
                assert_eq!(
                    data["$ref"],
                    format!("#/components/schemas/{inner}"),
                    "{name}: data is not the schema of its name (two types of one name?)"
                );
            }
            assert_eq!(
                schema["properties"]["success"]["enum"],
                serde_json::json!([true]),
                "{name}"
            );
        }
        assert_eq!(
            schemas["ErrorEnvelope"]["properties"]["success"]["enum"],
            serde_json::json!([false])
        );
        assert_eq!(document["servers"][0]["url"], "/");
    }
}
