use actix_web::{HttpResponse, get, web};

use crate::state::AppState;

/// The public keys that verify access tokens, in standard JWKS form (not enveloped, so JWT
/// libraries can use the URL directly). The key that signs new tokens is listed first.
#[utoipa::path(
    tag = "auth",
    responses((status = 200, description = "JSON Web Key Set", content_type = "application/json", body = Object))
)]
#[get("/.well-known/jwks.json")]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "public, max-age=300"))
        .json(state.auth.keys().jwks())
}
