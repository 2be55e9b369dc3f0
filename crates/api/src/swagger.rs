//! Swagger UI at `/docs/` and the OpenAPI document it reads, both served from memory.
//!
//! The UI's files come from `utoipa-swagger-ui` (vendored, so the build needs no network); the
//! handlers are ours, which keeps actix-web's default features (compression codecs, cookies,
//! websockets) out of the build.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use utoipa_swagger_ui::Config;

use crate::OPENAPI_PATH;

struct ApiDocs {
    /// The document, serialised once for all workers.
    document: web::Bytes,
    ui: Arc<Config<'static>>,
}

/// Registers `GET {OPENAPI_PATH}` and `GET /docs/{file}`.
pub(crate) fn configure(config: &mut web::ServiceConfig, document: &web::Bytes) {
    let docs = web::Data::new(ApiDocs {
        document: document.clone(),
        ui: Arc::new(Config::from(OPENAPI_PATH)),
    });
    config
        .service(
            web::resource(OPENAPI_PATH)
                .app_data(docs.clone())
                .route(web::get().to(openapi_document)),
        )
        .service(
            web::resource("/docs/{file:.*}")
                .app_data(docs)
                .route(web::get().to(swagger_file)),
        );
}

async fn openapi_document(docs: web::Data<ApiDocs>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(docs.document.clone())
}

async fn swagger_file(file: web::Path<String>, docs: web::Data<ApiDocs>) -> HttpResponse {
    match utoipa_swagger_ui::serve(&file, docs.ui.clone()) {
        Ok(Some(file)) => {
            let mut response = HttpResponse::Ok();
            if file.gzpipped {
                response.insert_header((header::CONTENT_ENCODING, "gzip"));
            }
            response
                .content_type(file.content_type)
                .body(file.bytes.into_owned())
        }
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(error) => {
            tracing::error!(%error, "the Swagger UI could not be served");
            HttpResponse::InternalServerError().finish()
        }
    }
}
