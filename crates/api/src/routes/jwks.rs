use actix_web::{HttpResponse, get, web};

use crate::state::AppState;

/// The public keys that verify access tokens, in standard JWKS form (not enveloped, so JWT
/// libraries can use the URL directly). The key that signs new tokens is listed first.
#[utoipa::path(
    tag = "auth",
    responses((status = 200, description = "JSON Web Key Set", content_type = "application/json", body = crate::response_schemas::Jwks))
)]
#[get("/.well-known/jwks.json")]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "public, max-age=300"))
        .json(state.auth.keys().jwks())
}

/// Discovery for resource servers that verify Steward's access tokens (JWT middleware pointed at
/// an issuer URL): the issuer, where the keys are, and how tokens are signed. Steward is not an
/// OpenID provider (no authorization endpoint, no ID tokens); the access token's claims are
/// `iss`, `aud`, `sub`, `sid`, `jti`, `iat` and `exp`.
#[utoipa::path(
    tag = "auth",
    responses((status = 200, description = "OpenID-style discovery document", content_type = "application/json", body = crate::response_schemas::Discovery))
)]
#[get("/.well-known/openid-configuration")]
pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    let keys = state.auth.keys();
    let base = state.auth.public_url().trim_end_matches('/');
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "public, max-age=300"))
        .json(serde_json::json!({
            "issuer": keys.issuer(),
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["token"],
            "claims_supported": ["iss", "aud", "sub", "sid", "jti", "iat", "exp"],
            "audience": keys.audience(),
        }))
}
