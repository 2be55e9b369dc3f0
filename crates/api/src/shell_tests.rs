//! The shell's handling of bad bodies, through the real middleware and extractor configs on a
//! probe route (the black-box suite covers routing failures on the running server).

use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, test, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::extractors::{self, Json};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    email: String,
    #[allow(dead_code)]
    display_name: String,
    #[serde(default)]
    kind: Option<ProbeKind>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ProbeKind {
    Phone,
}

async fn probe(body: Json<Probe>) -> HttpResponse {
    crate::envelope::ok(
        json!({"email": body.0.email, "phone": matches!(body.0.kind, Some(ProbeKind::Phone))}),
    )
}

async fn call(request: test::TestRequest) -> (StatusCode, Value, Option<String>) {
    let app = test::init_service(
        App::new()
            .configure(|config| extractors::configure(config, 1024))
            .route("/probe", web::post().to(probe))
            .wrap(actix_web::middleware::from_fn(crate::middleware::request_context)),
    )
    .await;
    let response = test::call_service(
        &app,
        request
            .uri("/probe")
            .method(actix_web::http::Method::POST)
            .to_request(),
    )
    .await;
    let status = response.status();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = test::read_body(response).await;
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
    (status, value, request_id)
}

fn assert_envelope(body: &Value, code: &str, request_id: Option<String>) {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(request_id.is_some());
    assert_eq!(
        body["error"]["requestId"].as_str().map(str::to_owned),
        request_id,
        "{body}"
    );
}

#[actix_web::test]
async fn a_valid_body_passes() {
    let (status, body, _) = call(
        test::TestRequest::default()
            .set_json(json!({"email": "a@example.com", "displayName": "A", "kind": "phone"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["phone"], true);
}

#[actix_web::test]
async fn malformed_json_is_a_400_envelope() {
    let request = test::TestRequest::default()
        .insert_header(("content-type", "application/json"))
        .set_payload("{\"email\": ");
    let (status, body, id) = call(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_envelope(&body, "VALIDATION_ERROR", id);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{body}"
    );
}

#[actix_web::test]
async fn a_body_over_the_limit_is_a_413_envelope() {
    let big = format!("{{\"email\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let request = test::TestRequest::default()
        .insert_header(("content-type", "application/json"))
        .set_payload(big);
    let (status, body, id) = call(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_envelope(&body, "PAYLOAD_TOO_LARGE", id);
}

#[actix_web::test]
async fn a_wrong_content_type_is_a_415_envelope() {
    let request = test::TestRequest::default()
        .insert_header(("content-type", "text/plain"))
        .set_payload("{\"email\": \"a@example.com\", \"displayName\": \"A\"}");
    let (status, body, id) = call(request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_envelope(&body, "UNSUPPORTED_MEDIA_TYPE", id);
}

#[actix_web::test]
async fn an_unknown_enum_value_and_a_missing_field_are_400s() {
    let (status, body, id) = call(
        test::TestRequest::default()
            .set_json(json!({"email": "a@example.com", "displayName": "A", "kind": "toaster"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_envelope(&body, "VALIDATION_ERROR", id);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown variant"),
        "{body}"
    );

    let (status, body, _) =
        call(test::TestRequest::default().set_json(json!({"email": "a@example.com"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("displayName"),
        "{body}"
    );
}
