//! Configuration backup and restore: an export imported into an empty instance reproduces the
//! configuration (the second instance's export equals the first's), webhook secrets travel
//! only sealed, a dry run changes nothing and lists the diff, conflicts are skipped or
//! overwritten, a wrong passphrase or a changed file is 400, two imports at once on two
//! instances write once, the command line does the same, and every refusal.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{
    TestApp, TestUser, docs, each_backend, expect_data, expect_error, send, spawn_app, spawn_second_instance,
};

const PASSPHRASE: &str = "correct horse battery staple";

async fn root(app: &TestApp) -> TestUser {
    let root = app.user("root@example.com").await;
    app.grant(root.id, "super_admin").await;
    root
}

async fn created(app: &TestApp, user: &TestUser, path: &str, body: Value) -> Value {
    let answer = send(app, Method::POST, path, user, Some(body)).await;
    let status = answer.status();
    assert!(
        status.is_success(),
        "{path}: {status} {}",
        answer.text().await.unwrap()
    );
    answer.json::<Value>().await.unwrap()["data"].clone()
}

/// A configuration of every kind on `app`: a setting, an organization with a default policy
/// using it, a custom role, an enabled allowlist that admits the tests' address, an
/// instance-wide and an organization's webhook.
async fn configure(app: &TestApp, root: &TestUser) {
    created(
        app,
        root,
        "/api/admin/v1/setting-definitions",
        json!({"key": "camera.enabled", "valueType": "bool", "defaultValue": true,
               "category": "device", "mergeRule": "override", "description": "The camera"}),
    )
    .await;
    let owner = app.user("owner@example.com").await;
    let org = app.organization(root, "acme", &owner).await;
    created(
        app,
        &owner,
        &format!("/api/admin/v1/organizations/{org}/policies"),
        json!({"name": "Baseline", "isDefault": true, "priority": 5,
               "settings": {"camera.enabled": false}, "locks": ["camera.enabled"]}),
    )
    .await;
    created(
        app,
        root,
        "/api/admin/v1/roles",
        json!({"name": "user_reader", "permissions": ["users:read", "sessions:read"], "description": "Reads accounts"}),
    )
    .await;
    created(
        app,
        root,
        "/api/admin/v1/ip-allowlist",
        json!({"cidr": "127.0.0.0/8", "name": "loopback", "description": "the tests"}),
    )
    .await;
    let enabled = send(
        app,
        Method::PUT,
        "/api/admin/v1/ip-allowlist/settings",
        root,
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(enabled.status(), StatusCode::OK);
    created(
        app,
        root,
        "/api/admin/v1/webhooks",
        json!({"url": "http://127.0.0.1:9/hooks/siem", "events": ["user.*"], "description": "SIEM"}),
    )
    .await;
    created(
        app,
        root,
        "/api/admin/v1/webhooks",
        json!({"url": "http://127.0.0.1:9/hooks/acme", "events": ["device.*"], "organizationId": org}),
    )
    .await;
}

/// Runs an export job and answers its file.
async fn export(app: &TestApp, by: &TestUser, body: Value) -> Value {
    let job = created(app, by, "/api/admin/v1/config/export", body).await;
    let id = job["id"].as_str().unwrap().to_owned();
    for _ in 0..600 {
        let job = expect_data(
            send(app, Method::GET, &format!("/api/admin/v1/jobs/{id}"), by, None).await,
            StatusCode::OK,
        )
        .await;
        match job["status"].as_str().unwrap() {
            "succeeded" => {
                let file = send(
                    app,
                    Method::GET,
                    &format!("/api/admin/v1/jobs/{id}/result"),
                    by,
                    None,
                )
                .await;
                assert_eq!(file.status(), StatusCode::OK);
                return file.json().await.unwrap();
            }
            "failed" | "cancelled" => panic!("export job ended {job}"),
            _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    panic!("the export job did not finish");
}

async fn import(app: &TestApp, by: &TestUser, query: &str, body: Value) -> reqwest::Response {
    send(
        app,
        Method::POST,
        &format!("/api/admin/v1/config/import{query}"),
        by,
        Some(body),
    )
    .await
}

/// The document's data without what differs between instances by nature.
fn data(document: &Value) -> Value {
    assert_eq!(document["format"], "steward-config", "{document}");
    document["data"].clone()
}

/// The documented checksum: SHA-256 of `data` as compact JSON with object keys sorted.
fn checksum(data: &Value) -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(serde_json::to_vec(data).unwrap()))
    )
}

fn actions(report: &Value) -> Vec<(String, String, String)> {
    report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["category"].as_str().unwrap().to_owned(),
                item["key"].as_str().unwrap().to_owned(),
                item["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn an_export_imported_into_an_empty_instance_reproduces_the_configuration() {
    each_backend(|backend| async move {
        let first = spawn_app(backend).await;
        let first_root = root(&first).await;
        configure(&first, &first_root).await;
        let plain = export(&first, &first_root, json!({})).await;
        assert_eq!(plain["schemaVersion"], 1);
        assert_eq!(plain["exportedBy"], "root@example.com");
        assert_eq!(plain["secretsIncluded"], false);
        assert!(plain["checksum"].as_str().unwrap().starts_with("sha256:"));
        let first_data = data(&plain);
        assert_eq!(first_data["roles"][0]["name"], "user_reader");
        assert_eq!(first_data["ipAllowlist"]["enabled"], true);
        assert_eq!(first_data["policies"][0]["organization"], "acme");
        // Without a passphrase, no secret travels.
        assert!(!plain.to_string().contains("whsec_"), "{plain}");
        // The document as docs/operations.md shows it.
        let shown =
            docs::example_json(&docs::block("docs/operations.md", "\"format\": \"steward-config\",").text)
                .unwrap();
        let three = export(
            &first,
            &first_root,
            json!({"include": ["settingDefinitions", "policies", "roles"]}),
        )
        .await;
        docs::matches(&shown, &three).unwrap_or_else(|difference| panic!("{backend:?}: {difference}"));
        let sealed = export(&first, &first_root, json!({"passphrase": PASSPHRASE})).await;
        let shown = docs::example_json(
            &docs::block(
                "docs/operations.md",
                "{\"format\": \"steward-sealed\", \"content\": \"steward-config\",",
            )
            .text,
        )
        .unwrap();
        docs::matches(&shown, &sealed).unwrap_or_else(|difference| panic!("{backend:?}: {difference}"));
        assert_eq!(sealed["format"], "steward-sealed");
        assert_eq!(sealed["kdf"], "argon2id");
        assert_eq!(sealed["cipher"], "AES-256-GCM");
        assert!(!sealed.to_string().contains("whsec_"));
        assert!(!sealed.to_string().contains("user_reader"));

        let second = spawn_app(backend).await;
        let second_root = root(&second).await;
        let empty = data(&export(&second, &second_root, json!({})).await);

        // Refusals change nothing.
        expect_error(
            import(
                &second,
                &second_root,
                "",
                json!({"file": sealed, "passphrase": "not the passphrase"}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        expect_error(
            import(&second, &second_root, "", json!({"file": sealed})).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        let mut tampered = sealed.clone();
        let cipher = tampered["ciphertext"].as_str().unwrap().to_owned();
        let flipped = if cipher.starts_with('A') { "B" } else { "A" };
        tampered["ciphertext"] = json!(format!("{flipped}{}", &cipher[1..]));
        expect_error(
            import(
                &second,
                &second_root,
                "",
                json!({"file": tampered, "passphrase": PASSPHRASE}),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        let mut edited = plain.clone();
        edited["data"]["roles"][0]["permissions"] = json!(["users:read", "users:write"]);
        let error = expect_error(
            import(&second, &second_root, "", json!({"file": edited})).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        assert!(error["message"].as_str().unwrap().contains("checksum"), "{error}");

        // A dry run, as docs/operations.md sends it, lists the diff and changes nothing.
        let documented = docs::block(
            "docs/operations.md",
            "POST /api/admin/v1/config/import?dryRun=true&onConflict=skip",
        )
        .text;
        let path = documented
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned();
        assert!(documented.contains("Content-Type: application/json"));
        assert!(documented.contains("{\"file\": {") && documented.contains("\"passphrase\": "));
        let dry = expect_data(
            send(
                &second,
                Method::POST,
                &path,
                &second_root,
                Some(json!({"file": sealed, "passphrase": PASSPHRASE})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            (dry["dryRun"].clone(), dry["applied"].clone()),
            (json!(true), json!(false))
        );
        assert_eq!(dry["document"]["sealed"], true);
        assert_eq!(dry["document"]["secretsIncluded"], true);
        let listed = actions(&dry);
        for expected in [
            ("settingDefinitions", "camera.enabled", "create"),
            ("organizations", "acme", "create"),
            ("organizations", "default", "unchanged"),
            ("policies", "Baseline", "create"),
            ("roles", "user_reader", "create"),
            ("ipAllowlist", "127.0.0.0/8", "create"),
            ("ipAllowlist", "enabled", "update"),
            ("webhooks", "http://127.0.0.1:9/hooks/siem", "create"),
            ("webhooks", "http://127.0.0.1:9/hooks/acme", "create"),
            ("notificationRules", "thresholds", "unchanged"),
            ("plans", "free", "unchanged"),
        ] {
            let expected = (
                expected.0.to_owned(),
                expected.1.to_owned(),
                expected.2.to_owned(),
            );
            // The switch is a change of an existing item: `update` only with overwrite.
            let expected = if expected.1 == "enabled" {
                (expected.0, expected.1, "conflict".to_owned())
            } else {
                expected
            };
            assert!(listed.contains(&expected), "{expected:?} in {listed:?}");
        }
        assert_eq!(dry["counts"]["create"], 7, "{dry}");
        assert_eq!(data(&export(&second, &second_root, json!({})).await), empty);

        // The real import, overwriting the switch too.
        let applied = expect_data(
            import(
                &second,
                &second_root,
                "?onConflict=overwrite",
                json!({"file": sealed, "passphrase": PASSPHRASE}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(applied["applied"], true, "{applied}");
        let shown = docs::example_json(
            &docs::block(
                "docs/operations.md",
                "{\"dryRun\": false, \"applied\": true, \"onConflict\": \"overwrite\",",
            )
            .text,
        )
        .unwrap();
        docs::matches(&shown, &applied).unwrap_or_else(|difference| panic!("{backend:?}: {difference}"));
        assert_eq!(applied["counts"]["create"], 7);
        assert_eq!(applied["counts"]["update"], 1);
        // The second instance's export equals the first's.
        assert_eq!(data(&export(&second, &second_root, json!({})).await), first_data);
        // The secrets came too: the same file again is unchanged throughout, secrets compared.
        let again = expect_data(
            import(
                &second,
                &second_root,
                "?dryRun=true",
                json!({"file": sealed, "passphrase": PASSPHRASE}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert!(
            actions(&again).iter().all(|(_, _, action)| action == "unchanged"),
            "{again}"
        );
        // The imported policy governs: it is the organization's default with its lock.
        let orgs = expect_data(
            send(
                &second,
                Method::GET,
                "/api/admin/v1/organizations?pageSize=100",
                &second_root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let acme = orgs
            .as_array()
            .unwrap()
            .iter()
            .find(|org| org["slug"] == "acme")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let policies = expect_data(
            send(
                &second,
                Method::GET,
                &format!("/api/admin/v1/organizations/{acme}/policies"),
                &second_root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(policies[0]["name"], "Baseline");
        assert_eq!(policies[0]["isDefault"], true);
        assert_eq!(policies[0]["locks"], json!(["camera.enabled"]));
        // Audited with the diff.
        assert!(
            second
                .audit_actions()
                .await
                .contains(&"config.imported".to_owned())
        );
        assert!(
            first
                .audit_actions()
                .await
                .contains(&"config.exported".to_owned())
        );

        // Multipart, as `curl -F file=@export.json` sends it: the plain file is all unchanged now.
        let boundary = "steward-test-boundary";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"export.json\"\r\n\
             Content-Type: application/json\r\n\r\n{plain}\r\n--{boundary}--\r\n"
        );
        let answer = second
            .authed(
                Method::POST,
                "/api/admin/v1/config/import?dryRun=true",
                &second_root.token,
            )
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let report = expect_data(answer, StatusCode::OK).await;
        assert_eq!(report["document"]["sealed"], false);
        assert_eq!(
            report["counts"]["unchanged"],
            report["items"].as_array().unwrap().len()
        );
        first.stop().await;
        second.stop().await;
    })
    .await;
}

#[tokio::test]
async fn conflicts_are_skipped_or_overwritten_and_every_refusal_changes_nothing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = root(&app).await;
        configure(&app, &root).await;
        let file = export(&app, &root, json!({"include": ["roles", "settingDefinitions", "policies", "organizations"]})).await;
        assert_eq!(
            file["include"],
            json!(["settingDefinitions", "organizations", "policies", "roles"])
        );
        assert!(file["data"].get("webhooks").is_none());
        let changed = send(
            &app,
            Method::PUT,
            "/api/admin/v1/roles/user_reader",
            &root,
            Some(json!({"permissions": ["users:read"], "description": "Reads accounts"})),
        )
        .await;
        assert_eq!(changed.status(), StatusCode::OK);
        let role = |app: &TestApp| {
            let app_url = app.url("/api/admin/v1/roles/user_reader");
            let client = app.client.clone();
            let token = root.token.clone();
            async move {
                let answer = client.get(app_url).bearer_auth(token).send().await.unwrap();
                let body: Value = answer.json().await.unwrap();
                body["data"]["permissions"].clone()
            }
        };
        let skipped = expect_data(import(&app, &root, "", json!({"file": file})).await, StatusCode::OK).await;
        let item = skipped["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item["key"] == "user_reader")
            .unwrap()
            .clone();
        assert_eq!(item["action"], "conflict");
        assert_eq!(item["fields"], json!(["permissions"]));
        assert!(item["reason"].as_str().unwrap().contains("skip"));
        assert_eq!(role(&app).await, json!(["users:read"]));
        let overwritten = expect_data(
            import(&app, &root, "?onConflict=overwrite", json!({"file": file})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(overwritten["counts"]["update"], 1, "{overwritten}");
        assert_eq!(role(&app).await, json!(["sessions:read", "users:read"]));

        // An operator may import only roles within their own permissions.
        let delegate = app.user("delegate@example.com").await;
        created(&app, &root, "/api/admin/v1/roles", json!({"name": "config_keeper", "permissions": ["config:manage"]})).await;
        app.grant(delegate.id, "config_keeper").await;
        let audit_before = app.count_rows("audit_logs").await;
        let refused = expect_error(
            import(&app, &delegate, "?dryRun=true", json!({"file": file})).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        assert!(refused["message"].as_str().unwrap().contains("settings:write"), "{refused}");
        // Each category needs what its own endpoint needs: organizations their plans' quotas:write.
        let organizations_only = export(&app, &root, json!({"include": ["organizations"]})).await;
        app.grant(delegate.id, "org_admin").await;
        let refused = expect_error(
            import(&app, &delegate, "?dryRun=true", json!({"file": organizations_only})).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        assert!(refused["message"].as_str().unwrap().contains("quotas:write"), "{refused}");
        // Webhook secrets leave only to who manages webhooks.
        let refused = expect_error(
            send(
                &app,
                Method::POST,
                "/api/admin/v1/config/export",
                &delegate,
                Some(json!({"include": ["webhooks"], "passphrase": PASSPHRASE})),
            )
            .await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        assert!(refused["message"].as_str().unwrap().contains("webhooks:manage"), "{refused}");
        // A role the importer could not change by hand stays: overwriting it needs what it holds.
        let keeper = app.user("keeper@example.com").await;
        created(&app, &root, "/api/admin/v1/roles", json!({"name": "role_keeper", "permissions": ["config:manage", "roles:write", "users:read"]})).await;
        app.grant(keeper.id, "role_keeper").await;
        let mut stripped = json!({"format": "steward-config", "schemaVersion": 1, "stewardVersion": "0",
            "createdAt": "2026-01-01T00:00:00Z", "exportedBy": "someone", "include": ["roles"],
            "secretsIncluded": false,
            "data": {"roles": [{"name": "user_reader", "permissions": ["users:read"]}]}});
        stripped["checksum"] = json!(checksum(&stripped["data"]));
        let refused = expect_error(
            import(&app, &keeper, "?onConflict=overwrite", json!({"file": stripped})).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        assert!(refused["message"].as_str().unwrap().contains("you may not change it"), "{refused}");
        assert_eq!(role(&app).await, json!(["sessions:read", "users:read"]));
        // Without config:manage: 403; without credentials: 401.
        let auditor = app.user("auditor@example.com").await;
        app.grant(auditor.id, "auditor").await;
        expect_error(import(&app, &auditor, "", json!({"file": file})).await, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        expect_error(
            send(&app, Method::POST, "/api/admin/v1/config/export", &auditor, Some(json!({}))).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        let anonymous = app.post_json("/api/admin/v1/config/import", &json!({"file": file})).await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        assert!(app.count_rows("audit_logs").await > audit_before, "refusals are audited");

        // An allowlist that would refuse the importer's own address: 409, nothing changes.
        let mut locking = json!({"format": "steward-config", "schemaVersion": 1, "stewardVersion": "0",
            "createdAt": "2026-01-01T00:00:00Z", "exportedBy": "someone", "include": ["ipAllowlist"],
            "secretsIncluded": false, "checksum": "sha256:00",
            "data": {"ipAllowlist": {"enabled": true, "entries": [{"network": "10.0.0.0/8", "name": "office"}]}}});
        // With a checksum that is not the data's it is a changed file.
        expect_error(import(&app, &root, "", json!({"file": locking})).await, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        locking["checksum"] = json!(checksum(&locking["data"]));
        // The allowlist is on and admits 127/8; overwriting cannot take it away (the file only
        // adds 10/8), so switch it off first and let the file switch it on with 10/8 alone.
        let off = send(&app, Method::PUT, "/api/admin/v1/ip-allowlist/settings", &root, Some(json!({"enabled": false}))).await;
        assert_eq!(off.status(), StatusCode::OK);
        let entries = expect_data(send(&app, Method::GET, "/api/admin/v1/ip-allowlist", &root, None).await, StatusCode::OK).await;
        for entry in entries["entries"].as_array().unwrap() {
            let id = entry["id"].as_str().unwrap();
            let gone = send(&app, Method::DELETE, &format!("/api/admin/v1/ip-allowlist/{id}"), &root, None).await;
            assert!(gone.status().is_success());
        }
        let error = expect_error(
            import(&app, &root, "?onConflict=overwrite", json!({"file": locking})).await,
            StatusCode::CONFLICT,
            "ALLOWLIST_WOULD_LOCK_OUT",
        )
        .await;
        assert_eq!(error["details"][0]["field"], "ipAllowlist", "{error}");
        let list = expect_data(send(&app, Method::GET, "/api/admin/v1/ip-allowlist", &root, None).await, StatusCode::OK).await;
        assert_eq!(list, json!({"enabled": false, "entries": []}), "nothing was imported");
        // A dry run says so too, and the same file with 127/8 beside 10/8 goes through.
        locking["data"]["ipAllowlist"]["entries"] =
            json!([{"network": "10.0.0.0/8", "name": "office"}, {"network": "127.0.0.1/32", "name": "here"}]);
        locking["checksum"] = json!(checksum(&locking["data"]));
        let fine = expect_data(
            import(&app, &root, "?onConflict=overwrite", json!({"file": locking})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(fine["counts"]["create"], 2, "{fine}");
        assert_eq!(fine["counts"]["update"], 1, "{fine}");

        // An enforced list without networks refuses everyone: 400 whoever asks.
        let mut empty = json!({"format": "steward-config", "schemaVersion": 1, "stewardVersion": "0",
            "createdAt": "2026-01-01T00:00:00Z", "exportedBy": "someone", "include": ["ipAllowlist"],
            "secretsIncluded": false,
            "data": {"ipAllowlist": {"enabled": true, "entries": []}}});
        let off = send(&app, Method::PUT, "/api/admin/v1/ip-allowlist/settings", &root, Some(json!({"enabled": false}))).await;
        assert_eq!(off.status(), StatusCode::OK);
        let entries = expect_data(send(&app, Method::GET, "/api/admin/v1/ip-allowlist", &root, None).await, StatusCode::OK).await;
        for entry in entries["entries"].as_array().unwrap() {
            let id = entry["id"].as_str().unwrap();
            send(&app, Method::DELETE, &format!("/api/admin/v1/ip-allowlist/{id}"), &root, None).await;
        }
        empty["checksum"] = json!(checksum(&empty["data"]));
        let error = expect_error(
            import(&app, &root, "?onConflict=overwrite", json!({"file": empty})).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(error["details"][0]["field"], "ipAllowlist.enabled", "{error}");

        // A plain file may not bring webhook secrets of its own.
        let mut known_secret = json!({"format": "steward-config", "schemaVersion": 1, "stewardVersion": "0",
            "createdAt": "2026-01-01T00:00:00Z", "exportedBy": "someone", "include": ["webhooks"],
            "secretsIncluded": false,
            "data": {"webhooks": [{"url": "http://127.0.0.1:9/hooks/siem", "events": ["user.*"], "enabled": true,
                                   "secret": "whsec_known_to_the_importer"}]}});
        known_secret["checksum"] = json!(checksum(&known_secret["data"]));
        let error = expect_error(
            import(&app, &root, "?onConflict=overwrite", json!({"file": known_secret})).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        assert!(error["message"].as_str().unwrap().contains("sealed"), "{error}");

        // A second default policy replaces the first only with overwrite.
        let mut second_default = export(&app, &root, json!({"include": ["policies"]})).await;
        second_default["data"]["policies"][0]["name"] = json!("Stricter");
        second_default["checksum"] = json!(checksum(&second_default["data"]));
        let kept = expect_data(import(&app, &root, "", json!({"file": second_default})).await, StatusCode::OK).await;
        assert_eq!(kept["items"][0]["action"], "conflict", "{kept}");
        assert!(kept["items"][0]["reason"].as_str().unwrap().contains("Baseline"), "{kept}");
        let replaced = expect_data(
            import(&app, &root, "?onConflict=overwrite", json!({"file": second_default})).await,
            StatusCode::OK,
        )
        .await;
        let listed = actions(&replaced);
        assert!(listed.contains(&("policies".to_owned(), "Stricter".to_owned(), "create".to_owned())), "{replaced}");
        assert!(listed.contains(&("policies".to_owned(), "Baseline".to_owned(), "update".to_owned())), "{replaced}");

        // Hostile input: every one 4xx, nothing written.
        let writes_before = app.count_rows("audit_logs").await;
        for (body, content_type, status) in [
            ("", "application/json", StatusCode::BAD_REQUEST),
            ("{", "application/json", StatusCode::BAD_REQUEST),
            ("{\"file\": {\"format\": \"steward-config\"}}", "application/json", StatusCode::BAD_REQUEST),
            ("{\"file\": {\"format\": \"other\"}}", "application/json", StatusCode::BAD_REQUEST),
            ("{\"file\": 12}", "application/json", StatusCode::BAD_REQUEST),
            ("{\"file\": {}, \"extra\": 1}", "application/json", StatusCode::BAD_REQUEST),
            ("{\"file\": {\"format\": \"steward-config\\u0000\"}}", "application/json", StatusCode::BAD_REQUEST),
            ("file=x", "application/x-www-form-urlencoded", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ("--x\r\n", "multipart/form-data; boundary=x", StatusCode::BAD_REQUEST),
        ] {
            let answer = app
                .authed(Method::POST, "/api/admin/v1/config/import", &root.token)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), status, "{body:?}");
        }
        let mut newer = file.clone();
        newer["schemaVersion"] = json!(2);
        let error = expect_error(import(&app, &root, "", json!({"file": newer})).await, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        assert!(error["message"].as_str().unwrap().contains("schema version"), "{error}");
        expect_error(
            import(&app, &root, "?onConflict=merge", json!({"file": file})).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        for body in [
            json!({"include": ["everything"]}),
            json!({"passphrase": "short"}),
            json!({"passphrase": 12}),
            json!({"include": "roles"}),
            json!({"unknown": true}),
        ] {
            expect_error(
                send(&app, Method::POST, "/api/admin/v1/config/export", &root, Some(body.clone())).await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
        }
        assert_eq!(app.count_rows("audit_logs").await, writes_before);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_document_that_does_not_fit_is_refused_whole_with_its_problems() {
    each_backend(|backend| async move {
        let source = spawn_app(backend).await;
        let root = root(&source).await;
        configure(&source, &root).await;
        // Policies and webhooks without the setting catalog and organizations they refer to.
        let file = export(
            &source,
            &root,
            json!({"include": ["policies", "webhooks", "roles"]}),
        )
        .await;
        let target = spawn_app(backend).await;
        let target_root = target.user("root@example.com").await;
        target.grant(target_root.id, "super_admin").await;
        let error = expect_error(
            import(&target, &target_root, "", json!({"file": file})).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        let fields: Vec<&str> = error["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|detail| detail["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&"policies[0].organization"), "{error}");
        assert!(
            fields.contains(&"webhooks[0].organization") || fields.contains(&"webhooks[1].organization"),
            "{error}"
        );
        // Nothing of it was written, not even the role that fitted.
        let roles = expect_data(
            send(&target, Method::GET, "/api/admin/v1/roles", &target_root, None).await,
            StatusCode::OK,
        )
        .await;
        assert!(!roles.to_string().contains("user_reader"), "{roles}");
        source.stop().await;
        target.stop().await;
    })
    .await;
}

#[tokio::test]
async fn two_imports_at_once_on_two_instances_write_once() {
    each_backend(|backend| async move {
        let source = spawn_app(backend).await;
        let root = root(&source).await;
        configure(&source, &root).await;
        let file = export(&source, &root, json!({"passphrase": PASSPHRASE})).await;
        let target = spawn_app(backend).await;
        let target_root = target.user("root@example.com").await;
        target.grant(target_root.id, "super_admin").await;
        let (second_url, second_handle) = spawn_second_instance(&target).await;
        let body = json!({"file": file, "passphrase": PASSPHRASE});
        let one = target
            .authed(Method::POST, "/api/admin/v1/config/import", &target_root.token)
            .json(&body)
            .send();
        let two = target
            .client
            .post(format!("{second_url}/api/admin/v1/config/import"))
            .bearer_auth(&target_root.token)
            .json(&body)
            .send();
        let (one, two) = tokio::join!(one, two);
        let mut creates = 0;
        for answer in [one.unwrap(), two.unwrap()] {
            let report = expect_data(answer, StatusCode::OK).await;
            creates += report["counts"]["create"].as_u64().unwrap();
        }
        // One of them created everything; the other found it there.
        assert_eq!(creates, 7);
        assert_eq!(target.count_rows("webhooks").await, 2);
        assert_eq!(target.count_rows("ip_allowlist").await, 1);
        assert_eq!(target.count_rows("custom_roles").await, 1);
        assert_eq!(target.count_rows("device_policies").await, 1);
        second_handle.stop(true).await;
        source.stop().await;
        target.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_command_line_exports_and_imports_with_the_same_rules() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = root(&app).await;
        created(
            &app,
            &root,
            "/api/admin/v1/roles",
            json!({"name": "user_reader", "permissions": ["users:read"]}),
        )
        .await;
        let config = app.data_dir.path().join("steward.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\ndatabase_url = {:?}\n",
                app.data_dir.path().display().to_string(),
                app.database.url
            ),
        )
        .unwrap();
        // The commands as docs/operations.md shows them.
        let documented = docs::block("docs/operations.md", "steward config export [--include").text;
        for flag in [
            "--include",
            "--passphrase-stdin",
            "--out",
            "--dry-run",
            "--on-conflict skip|overwrite",
            "--as",
        ] {
            assert!(documented.contains(flag), "{flag}");
        }
        let out = app.data_dir.path().join("export.json");
        let run = |args: Vec<String>| async move {
            let mut all = vec!["steward".to_owned(), "--config".to_owned()];
            all.extend(args);
            steward::cli::run(<steward::cli::Cli as clap::Parser>::parse_from(all)).await
        };
        run(vec![
            config.display().to_string(),
            "config".into(),
            "export".into(),
            "--include".into(),
            "roles,plans".into(),
            "--out".into(),
            out.display().to_string(),
        ])
        .await
        .unwrap();
        let document: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(document["exportedBy"], "shell");
        assert_eq!(document["include"], json!(["roles", "plans"]));
        assert_eq!(document["data"]["roles"][0]["name"], "user_reader");
        // The shell's export is the API's: the API imports it, all unchanged.
        let report = expect_data(
            import(&app, &root, "?dryRun=true", json!({"file": document})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(report["counts"]["unchanged"], 2, "{report}");
        // The role changes; the shell's import with overwrite restores it.
        send(
            &app,
            Method::PUT,
            "/api/admin/v1/roles/user_reader",
            &root,
            Some(json!({"permissions": ["sessions:read"]})),
        )
        .await;
        let import_args = |extra: &[&str]| {
            let mut args = vec![
                config.display().to_string(),
                "config".into(),
                "import".into(),
                out.display().to_string(),
            ];
            args.extend(extra.iter().map(|arg| (*arg).to_owned()));
            args
        };
        run(import_args(&["--dry-run", "--on-conflict", "overwrite"]))
            .await
            .unwrap();
        let permissions = |app: &TestApp| {
            let url = app.url("/api/admin/v1/roles/user_reader");
            let client = app.client.clone();
            let token = root.token.clone();
            async move {
                let body: Value = client
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["data"]["permissions"].clone()
            }
        };
        assert_eq!(
            permissions(&app).await,
            json!(["sessions:read"]),
            "a dry run changes nothing"
        );
        run(import_args(&["--on-conflict", "overwrite"])).await.unwrap();
        assert_eq!(permissions(&app).await, json!(["users:read"]));
        // A changed file fails with the reason.
        let mut changed = document.clone();
        changed["data"]["roles"][0]["permissions"] = json!(["users:write"]);
        std::fs::write(&out, serde_json::to_vec(&changed).unwrap()).unwrap();
        let error = run(import_args(&[])).await.unwrap_err();
        assert!(error.to_string().contains("checksum"), "{error}");
        assert!(run(import_args(&["--on-conflict", "merge"])).await.is_err());
        // Run with another data dir, the shell has not the server's key: it refuses rather
        // than seal webhook secrets the server cannot open.
        let elsewhere = tempfile::tempdir().unwrap();
        let other_config = elsewhere.path().join("steward.toml");
        std::fs::write(
            &other_config,
            format!(
                "data_dir = {:?}\ndatabase_url = {:?}\n",
                elsewhere.path().display().to_string(),
                app.database.url
            ),
        )
        .unwrap();
        let error = run(vec![
            other_config.display().to_string(),
            "config".into(),
            "import".into(),
            out.display().to_string(),
            "--dry-run".into(),
        ])
        .await
        .unwrap_err();
        assert!(
            error.to_string().contains("STEWARD_MFA_ENCRYPTION_KEY"),
            "{error}"
        );
        assert!(!elsewhere.path().join("keys/mfa-encryption.key").exists());
        app.stop().await;
    })
    .await;
}
