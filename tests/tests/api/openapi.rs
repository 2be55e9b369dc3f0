use std::path::PathBuf;

use reqwest::StatusCode;
use steward_tests::{Backend, spawn_app};

fn committed_spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json")
}

#[test]
fn the_committed_spec_matches_the_code() {
    let generated = steward::cli::openapi_json().unwrap();
    let committed = std::fs::read_to_string(committed_spec_path()).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is out of date with the handlers: run `just openapi` and commit it"
    );
}

#[test]
fn the_spec_is_openapi_3_1_with_envelopes_and_security_schemes() {
    let spec: serde_json::Value = serde_json::from_str(&steward::cli::openapi_json().unwrap()).unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    for path in ["/health", "/health/ready", "/metrics"] {
        assert!(spec["paths"][path]["get"].is_object(), "{path} is documented");
    }
    let schemas = &spec["components"]["schemas"];
    for schema in ["ErrorEnvelope", "ErrorBody", "ErrorCode", "FieldError"] {
        assert!(schemas[schema].is_object(), "{schema} is in the spec");
    }
    let codes: Vec<&str> = schemas["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "VALIDATION_ERROR",
        "UNAUTHORIZED",
        "VERSION_CONFLICT",
        "SETTING_LOCKED",
        "RATE_LIMITED",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["bearer"]["bearerFormat"], "JWT");
    assert_eq!(schemes["apiKey"]["name"], "X-API-Key");
    assert_eq!(schemes["apiKey"]["in"], "header");
    assert!(
        spec["paths"]["/health/ready"]["get"]["responses"]["503"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap()
            .ends_with("/ErrorEnvelope")
    );
}

#[tokio::test]
async fn the_served_spec_is_the_generated_one() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.get("/api-docs/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let served: serde_json::Value = response.json().await.unwrap();
    let generated: serde_json::Value = serde_json::from_str(&steward::cli::openapi_json().unwrap()).unwrap();
    assert_eq!(served, generated);
    app.stop().await;
}
