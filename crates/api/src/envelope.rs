//! Success envelopes: `{"success": true, "data": …}` and, for lists, a `meta` with the page.

use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};
use steward_domain::PageRequest;
use utoipa::ToSchema;

/// A successful response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Envelope<T> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
}

/// Where a list page sits in the whole list.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageMeta {
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

/// A successful list response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListEnvelope<T> {
    pub success: bool,
    pub data: Vec<T>,
    pub meta: PageMeta,
}

/// 200 with `data`.
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Ok().json(Envelope { success: true, data })
}

/// 202 with `data`: accepted, waiting on someone else.
pub fn accepted<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Accepted().json(Envelope { success: true, data })
}

/// 201 with `data`.
pub fn created<T: Serialize>(data: T) -> HttpResponse {
    HttpResponse::Created().json(Envelope { success: true, data })
}

/// 200 with one page of a list.
pub fn page<T: Serialize>(items: Vec<T>, request: PageRequest, total: u64) -> HttpResponse {
    HttpResponse::Ok().json(ListEnvelope {
        success: true,
        data: items,
        meta: PageMeta {
            page: request.page(),
            per_page: request.per_page(),
            total,
        },
    })
}

/// A file to download, not an envelope: `200` with its type, `Content-Disposition: attachment`
/// naming it, and `Cache-Control: no-store` (exports hold personal data). Add the body
/// (`.body(…)` or `.streaming(…)`).
pub fn attachment(content_type: &str, name: &str) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder
        .content_type(content_type.to_owned())
        .insert_header(("content-disposition", format!("attachment; filename=\"{name}\"")))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
    builder
}
