//! Organization and fleet fixtures: an organization with its administrators, enrollment
//! tokens, enrolled devices and requests made as a device.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::{TestApp, TestUser, expect_data, send};

/// An organization with a super_admin (`root`) and an owner, as the fleet tests use it.
pub struct Org {
    pub root: TestUser,
    pub owner: TestUser,
    pub id: String,
}

impl Org {
    pub fn path(&self, rest: &str) -> String {
        format!("/api/admin/v1/organizations/{}{rest}", self.id)
    }
}

pub async fn organization(app: &TestApp, slug: &str) -> Org {
    let root = app.user(&format!("root-{slug}@example.com")).await;
    app.grant(root.id, "super_admin").await;
    let owner = app.user(&format!("owner-{slug}@example.com")).await;
    let created = send(
        app,
        Method::POST,
        "/api/admin/v1/organizations",
        &root,
        Some(json!({"name": slug, "slug": slug, "ownerUserId": owner.id})),
    )
    .await;
    let id = expect_data(created, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    Org { root, owner, id }
}

pub async fn post(app: &TestApp, user: &TestUser, path: &str, body: Value) -> Value {
    expect_data(
        send(app, Method::POST, path, user, Some(body)).await,
        StatusCode::CREATED,
    )
    .await
}

/// A token of the organization: (id, secret).
pub async fn token(app: &TestApp, org: &Org, body: Value) -> (String, String) {
    let created = post(app, &org.owner, &org.path("/enrollment-tokens"), body).await;
    (
        created["id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
    )
}

pub fn enroll(app: &TestApp, secret: &str, device: &str) -> impl Future<Output = Response> + 'static + use<> {
    app.post_json(
        "/api/v1/devices/enroll",
        &json!({"enrollmentToken": secret, "deviceId": device, "displayName": format!("Phone {device}"),
            "platform": "android", "serialNumber": format!("SN-{device}"), "model": "Pixel 9"}),
    )
}

/// Enrolls and answers (device id, device token, the answer's data).
pub async fn enrolled(app: &TestApp, secret: &str, device: &str) -> (String, String, Value) {
    let data = expect_data(enroll(app, secret, device).await, StatusCode::CREATED).await;
    (
        data["deviceId"].as_str().unwrap().to_owned(),
        data["deviceToken"].as_str().unwrap().to_owned(),
        data,
    )
}

pub fn as_device(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> impl Future<Output = Response> + 'static + use<> {
    let request = app.client.request(method, app.url(path)).bearer_auth(token);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    async move { request.send().await.unwrap() }
}

pub async fn sync(app: &TestApp, device: &str, token: &str, body: Value) -> Response {
    as_device(
        app,
        Method::POST,
        &format!("/api/v1/devices/{device}/settings/sync"),
        token,
        Some(body),
    )
    .await
}

/// A day ago: for expiring tokens and commands in place.
pub fn past() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::days(1)
}
