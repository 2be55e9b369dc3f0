//! The one middleware every request passes: request id, the error envelope for responses the
//! framework made (404, 405, …), security headers, metrics and the request log line.

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError};

use crate::error::ApiError;
use crate::request_id;

pub async fn request_context(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, Error> {
    let started = Instant::now();
    let id = request_id::assign(&request);
    let method = request.method().to_string();
    let path = request.path().to_owned();

    let mut response = if let Some(refusal) = refused_uri(&request) {
        let (request, _) = request.into_parts();
        let answer = request_id::sync_scope(id.clone(), || refusal.error_response());
        ServiceResponse::new(request, answer).map_into_right_body()
    } else {
        match request_id::scope(id.clone(), next.call(request)).await {
            Ok(response) => envelope_framework_errors(response, &id),
            // Services below answer errors as responses; an `Err` here means the request is
            // gone, so the best that can be done is to make sure it still renders as an envelope.
            Err(error) if error.as_error::<ApiError>().is_some() => return Err(error),
            Err(error) => return Err(ApiError::for_status(error.as_response_error().status_code()).into()),
        }
    };

    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(HeaderName::from_static(request_id::HEADER), value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));

    let status = response.status().as_u16();
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let elapsed = started.elapsed();
    crate::metrics::record_request(&method, &route, status, elapsed);
    if let Some(state) = response
        .request()
        .app_data::<actix_web::web::Data<crate::AppState>>()
    {
        state.health.vitals.requests.record(status, elapsed);
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(request_id = %id, %method, %path, %route, status, latency_ms, "request failed");
    } else {
        tracing::info!(request_id = %id, %method, %path, %route, status, latency_ms, "request");
    }
    Ok(response)
}

/// A path or query that decodes to a NUL character is refused before routing: no database
/// stores it alike (PostgreSQL refuses it), so no parameter may carry one.
fn refused_uri(request: &ServiceRequest) -> Option<ApiError> {
    let has_nul = |raw: &str| raw.contains("%00");
    if has_nul(request.uri().path()) {
        return Some(ApiError::invalid(
            "path",
            "must not contain the NUL character (%00)",
        ));
    }
    if has_nul(request.query_string()) {
        return Some(ApiError::invalid(
            "query",
            "must not contain the NUL character (%00)",
        ));
    }
    // Steward reads bodies as sent: a compressed one would otherwise be refused as "not JSON".
    let encoded = request.headers().get_all(header::CONTENT_ENCODING).any(|value| {
        !value
            .to_str()
            .is_ok_and(|text| text.trim().eq_ignore_ascii_case("identity"))
    });
    if encoded {
        return Some(ApiError::unsupported_encoding());
    }
    None
}

/// Replaces the body of any error response that did not come from an [`ApiError`] (actix's
/// 404 and 405, errors of other middleware) with the error envelope.
fn envelope_framework_errors<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
    id: &str,
) -> ServiceResponse<EitherBody<B>> {
    let status = response.status();
    let from_api_error = response
        .response()
        .error()
        .is_some_and(|error| error.as_error::<ApiError>().is_some());
    if !status.is_client_error() && !status.is_server_error() || from_api_error {
        return response.map_into_left_body();
    }
    let (request, original) = response.into_parts();
    let mut replacement =
        request_id::sync_scope(id.to_owned(), || ApiError::for_status(status).error_response());
    if let Some(allow) = original.headers().get(header::ALLOW) {
        replacement.headers_mut().insert(header::ALLOW, allow.clone());
    }
    ServiceResponse::new(request, replacement).map_into_right_body()
}
