//! Lists built for size: the audit trail continued by cursor, an organization's users paged,
//! and the fleet search kept current by the database (SQLite's trigram table, PostgreSQL's
//! trigram index) as devices are renamed and deleted.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use steward_persistence::entities::devices;
use steward_tests::fleet::{enrolled, organization, post, token};
use steward_tests::{each_backend, expect_error, send, spawn_app};

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_audit_trail_continues_by_cursor_without_repeats_or_gaps() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let auditor = app.user("auditor@example.com").await;
        app.grant(auditor.id, "auditor").await;
        for n in 0..5 {
            app.user(&format!("person-{n}@example.com")).await;
        }
        let get = |path: String| {
            let app = &app;
            let token = auditor.token.clone();
            async move { app.authed(Method::GET, &path, &token).send().await.unwrap() }
        };
        let everything: Value = get("/api/admin/v1/audit-logs?perPage=100".to_owned())
            .await
            .json()
            .await
            .unwrap();
        let all = ids(&everything);
        assert!(all.len() >= 10, "{everything}");
        assert_eq!(
            everything["meta"]["nextCursor"],
            Value::Null,
            "one page holds them all"
        );

        let first: Value = get("/api/admin/v1/audit-logs?perPage=3".to_owned())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(first["meta"]["page"], 1);
        assert_eq!(first["meta"]["total"], all.len());
        let mut walked = ids(&first);
        let mut cursor = first["meta"]["nextCursor"].as_str().unwrap().to_owned();
        // Entries written while the pages are read are newer than every cursor: never repeated.
        app.user("meanwhile@example.com").await;
        loop {
            let page: Value = get(format!("/api/admin/v1/audit-logs?perPage=3&cursor={cursor}"))
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(page["meta"]["perPage"], 3, "{page}");
            assert!(
                page["meta"].get("total").is_none(),
                "a cursor page counts nothing: {page}"
            );
            assert!(page["meta"].get("page").is_none(), "{page}");
            walked.extend(ids(&page));
            match page["meta"]["nextCursor"].as_str() {
                Some(next) => {
                    assert_eq!(page["data"].as_array().unwrap().len(), 3, "{page}");
                    cursor = next.to_owned();
                }
                None => break,
            }
        }
        assert_eq!(
            walked, all,
            "{backend:?}: the cursor pages are the trail as it was, in order"
        );
        assert_eq!(walked.iter().collect::<HashSet<_>>().len(), walked.len());

        // Filters apply to cursor pages too.
        let filtered: Value = get("/api/admin/v1/audit-logs?action=auth.registered&perPage=2".to_owned())
            .await
            .json()
            .await
            .unwrap();
        let next = filtered["meta"]["nextCursor"].as_str().unwrap();
        let rest: Value = get(format!(
            "/api/admin/v1/audit-logs?action=auth.registered&perPage=100&cursor={next}"
        ))
        .await
        .json()
        .await
        .unwrap();
        assert!(
            rest["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["action"] == "auth.registered"),
            "{rest}"
        );
        assert_eq!(
            ids(&filtered).len() + ids(&rest).len(),
            filtered["meta"]["total"].as_u64().unwrap() as usize
        );

        for refused in [
            format!("cursor={cursor}&page=2"),
            "cursor=nope".to_owned(),
            "cursor=".to_owned(),
            "cursor=12-%00".to_owned(),
            format!("cursor={}-{}", "9".repeat(40), uuid::Uuid::nil().simple()),
            format!("cursor={cursor}&perPage=0"),
            format!("cursor={cursor}&perPage=101"),
        ] {
            let answer = get(format!("/api/admin/v1/audit-logs?{refused}")).await;
            expect_error(answer, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        }
        let outsider = app.user("outsider@example.com").await;
        let answer = app
            .authed(
                Method::GET,
                &format!("/api/admin/v1/audit-logs?cursor={cursor}"),
                &outsider.token,
            )
            .send()
            .await
            .unwrap();
        expect_error(answer, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    })
    .await;
}

#[tokio::test]
async fn an_organizations_users_are_paged_in_joining_order() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "paged").await;
        let mut joined = vec![org.owner.id.to_string()];
        for n in 0..5 {
            let user = app.user(&format!("member-{n}@example.com")).await;
            post(
                &app,
                &org.owner,
                &org.path("/users"),
                json!({"userId": user.id, "role": "viewer"}),
            )
            .await;
            joined.push(user.id.to_string());
        }
        let page = |query: &'static str| {
            send(
                &app,
                Method::GET,
                &org.path(&format!("/users{query}")),
                &org.owner,
                None,
            )
        };
        let listed = |page: &Value| -> Vec<String> {
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["userId"].as_str().unwrap().to_owned())
                .collect()
        };
        let first: Value = page("?perPage=4").await.json().await.unwrap();
        assert_eq!(first["meta"]["total"], 6, "{first}");
        assert_eq!(first["meta"]["perPage"], 4);
        let second: Value = page("?perPage=4&page=2").await.json().await.unwrap();
        let mut both = listed(&first);
        both.extend(listed(&second));
        assert_eq!(both, joined, "{backend:?}");
        let default: Value = page("").await.json().await.unwrap();
        assert_eq!(default["meta"]["perPage"], 20);
        assert_eq!(listed(&default), joined);
        let past_the_end: Value = page("?page=9").await.json().await.unwrap();
        assert_eq!(past_the_end["data"], json!([]));
        assert_eq!(past_the_end["meta"]["total"], 6);
        for refused in [
            "?page=0",
            "?perPage=0",
            "?perPage=101",
            "?page=-1",
            "?page=99999999999999999999",
        ] {
            expect_error(page(refused).await, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        }
        // The export still holds every user, not a page.
        let export: Value = send(&app, Method::GET, &org.path("/users/export"), &org.owner, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(export.as_array().unwrap().len(), 6, "{export}");
    })
    .await;
}

#[tokio::test]
async fn the_fleet_search_follows_renames_and_deletions() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "search").await;
        let (_, secret) = token(&app, &org, json!({})).await;
        let (van, _, _) = enrolled(&app, &secret, "van-17").await;
        let (desk, _, _) = enrolled(&app, &secret, "desk-4").await;
        // Another organization's device with the same name is never found here.
        let other = organization(&app, "elsewhere").await;
        let (_, other_secret) = token(&app, &other, json!({})).await;
        enrolled(&app, &other_secret, "van-170").await;
        let found = |q: String| {
            let app = &app;
            let path = org.path(&format!("/devices?q={q}"));
            let owner = &org.owner;
            async move {
                let page = expect_data_page(send(app, Method::GET, &path, owner, None).await).await;
                page["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["id"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(found("VAN-1".into()).await, [van.as_str()], "{backend:?}");
        assert_eq!(found("sn-desk".into()).await, [desk.as_str()]);
        assert_eq!(
            found("ne de".into()).await,
            [desk.as_str()],
            "across a space in the name"
        );
        assert_eq!(
            found("an".into()).await.len(),
            1,
            "two characters: scanned, same answer"
        );
        assert!(found("%22%20OR%20%22".into()).await.is_empty(), "quotes are text");
        assert!(found("van%25".into()).await.is_empty(), "`%` is text");

        let renamed = devices::Entity::update_many()
            .col_expr(devices::Column::DisplayName, Expr::value("Forklift north"))
            .filter(devices::Column::Id.eq(van.parse::<uuid::Uuid>().unwrap()))
            .exec(app.db.connection())
            .await
            .unwrap();
        assert_eq!(renamed.rows_affected, 1);
        assert_eq!(found("forklift".into()).await, [van.as_str()]);
        assert!(found("phone van".into()).await.is_empty(), "the old name is gone");
        assert_eq!(
            found("SN-VAN-17".into()).await,
            [van.as_str()],
            "the serial number stays"
        );

        devices::Entity::delete_many()
            .filter(devices::Column::Id.eq(desk.parse::<uuid::Uuid>().unwrap()))
            .exec(app.db.connection())
            .await
            .unwrap();
        assert!(found("desk".into()).await.is_empty());
        assert_eq!(found("forklift".into()).await, [van.as_str()]);
    })
    .await;
}

async fn expect_data_page(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}
