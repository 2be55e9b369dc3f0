//! The black-box test harness: the real application on a random port, a fresh database per
//! test (a temporary SQLite file, or a PostgreSQL database created and dropped around the
//! test), and helpers to make requests and read envelopes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use sqlx::Connection;
use steward::{Application, Config};
use steward_persistence::Database;
use tokio::sync::OnceCell;

pub mod docs;
// Verbatim from docs/events.md: formatting it would make it differ from the docs.
#[rustfmt::skip]
pub mod documented_verify;
pub mod fleet;
pub mod idp;
pub mod mfa;
pub mod push;
pub mod receiver;
pub mod smtp;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

fn postgres_admin_url() -> String {
    std::env::var("STEWARD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

fn postgres_required() -> bool {
    std::env::var("STEWARD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1" || v == "true")
}

static POSTGRES_REACHABLE: OnceCell<bool> = OnceCell::const_new();

/// SQLite always; PostgreSQL when it answers. With `STEWARD_REQUIRE_POSTGRES=1` an unreachable
/// PostgreSQL fails the test instead of being skipped.
pub async fn backends() -> Vec<Backend> {
    let reachable = *POSTGRES_REACHABLE
        .get_or_init(|| async {
            let url = postgres_admin_url();
            let attempt =
                tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&url)).await;
            match attempt {
                Ok(Ok(connection)) => {
                    let _ = connection.close().await;
                    true
                }
                Ok(Err(error)) => postgres_unreachable(&url, &error.to_string()),
                Err(_) => postgres_unreachable(&url, "no answer within 5 s"),
            }
        })
        .await;
    let mut backends = if reachable {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        vec![Backend::Sqlite]
    };
    // `STEWARD_TEST_BACKENDS=postgres` (or `sqlite`): one half of the suite, while working.
    if let Ok(only) = std::env::var("STEWARD_TEST_BACKENDS") {
        let only = only.to_ascii_lowercase();
        backends.retain(|backend| match backend {
            Backend::Sqlite => only.contains("sqlite"),
            Backend::Postgres => only.contains("postgres"),
        });
    }
    backends
}

fn postgres_unreachable(url: &str, reason: &str) -> bool {
    assert!(
        !postgres_required(),
        "STEWARD_REQUIRE_POSTGRES is set but PostgreSQL at {url} is unreachable: {reason}"
    );
    eprintln!("PostgreSQL at {url} is unreachable ({reason}): skipping the PostgreSQL half of the suite");
    false
}

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

static REDIS_REACHABLE: OnceCell<bool> = OnceCell::const_new();

/// The Redis the shared-limit tests use (`STEWARD_TEST_REDIS_URL`, default
/// `redis://127.0.0.1:6379`), when it answers `PING`; `None` skips those tests, unless
/// `STEWARD_REQUIRE_REDIS=1`, which fails them instead.
pub async fn redis_url() -> Option<String> {
    let url = std::env::var("STEWARD_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
    let reachable = *REDIS_REACHABLE
        .get_or_init(|| {
            let url = url.clone();
            async move {
                let address = url
                    .trim_start_matches("redis://")
                    .trim_end_matches('/')
                    .to_owned();
                let ping = async {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut stream = tokio::net::TcpStream::connect(&address).await?;
                    stream.write_all(b"PING\r\n").await?;
                    let mut answer = [0u8; 7];
                    stream.read_exact(&mut answer).await?;
                    Ok::<_, std::io::Error>(&answer == b"+PONG\r\n")
                };
                let answered = matches!(
                    tokio::time::timeout(Duration::from_secs(5), ping).await,
                    Ok(Ok(true))
                );
                let required = std::env::var("STEWARD_REQUIRE_REDIS").is_ok_and(|v| v == "1" || v == "true");
                assert!(
                    answered || !required,
                    "STEWARD_REQUIRE_REDIS is set but Redis at {url} does not answer PING"
                );
                if !answered {
                    eprintln!("Redis at {url} does not answer: skipping the shared-limit tests");
                }
                answered
            }
        })
        .await;
    reachable.then_some(url)
}

/// Runs `test` once per available backend.
pub async fn each_backend<F, Fut>(test: F)
where
    F: Fn(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in backends().await {
        test(backend).await;
    }
}

/// A database of its own for one test; dropped (PostgreSQL) or deleted (SQLite) afterwards.
pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    /// PostgreSQL only: the database's name, for tests that manipulate it.
    pub name: String,
    /// PostgreSQL with row-level security (`STEWARD_TEST_RLS=1`): the URL of the application
    /// role `steward_app` (not the tables' owner, not a superuser), which the server connects
    /// as while migrations run as `url`'s role and `STEWARD_RLS_ENFORCE` is on.
    pub app_url: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

/// The role the server connects as in the row-level security runs.
pub const APP_ROLE: &str = "steward_app";

/// Whether PostgreSQL tests run the server as [`APP_ROLE`] with row-level security enforced.
pub fn rls_runs() -> bool {
    std::env::var("STEWARD_TEST_RLS").is_ok_and(|v| v == "1" || v == "true")
}

/// Creates [`APP_ROLE`] when missing (tests create it concurrently: a duplicate is fine) and
/// gives it what `docs/operations.md` gives the application role, in database `name`.
async fn prepare_app_role(admin: &str, name: &str) -> String {
    let mut connection = sqlx::PgConnection::connect(admin).await.unwrap();
    let create = format!(
        "DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut connection)
        .await
        .unwrap();
    let _ = connection.close().await;
    let url = database_url_for(admin, name);
    let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
    let grants = format!(
        "GRANT USAGE ON SCHEMA public TO {APP_ROLE}; \
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}; \
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(grants))
        .execute(&mut connection)
        .await
        .unwrap();
    let _ = connection.close().await;
    let (scheme_and_user, rest) = url.split_once('@').unwrap();
    let scheme = scheme_and_user
        .split_once("://")
        .map(|(scheme, _)| scheme)
        .unwrap_or("postgres");
    format!("{scheme}://{APP_ROLE}@{rest}")
}

impl TestDatabase {
    pub async fn create(backend: Backend) -> Self {
        let name = format!("steward_test_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}/steward.db?mode=rwc", dir.path().display());
                Self {
                    backend,
                    url,
                    name,
                    app_url: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let mut connection = sqlx::PgConnection::connect(&admin).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut connection)
                    .await
                    .unwrap();
                let _ = connection.close().await;
                let app_url = if rls_runs() {
                    Some(prepare_app_role(&admin, &name).await)
                } else {
                    None
                };
                Self {
                    backend,
                    url: database_url_for(&admin, &name),
                    name,
                    app_url,
                    _dir: None,
                }
            }
        }
    }

    /// Runs SQL on the PostgreSQL server as the administrator (outside this database).
    pub async fn postgres_admin(&self, sql: &str) {
        let mut connection = sqlx::PgConnection::connect(&postgres_admin_url()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut connection)
            .await
            .unwrap();
        let _ = connection.close().await;
    }

    pub async fn connect(&self) -> Database {
        Database::connect(&steward_persistence::DatabaseOptions::new(self.url.clone()))
            .await
            .unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.backend != Backend::Postgres {
            return;
        }
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived
        // runtime on its own thread does the cleanup.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(mut connection) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut connection)
                        .await;
                    let _ = connection.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

fn database_url_for(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let server = base.rsplit_once('/').map(|(server, _)| server).unwrap_or(base);
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// The `token` query parameter of the first link in a mail's text.
/// A MIME message as a reader sees it: the raw header block, the decoded subject, then the
/// decoded text and HTML parts.
pub fn readable_mail(raw: &str) -> String {
    let Some(parsed) = mail_parser::MessageParser::default().parse(raw.as_bytes()) else {
        return raw.to_owned();
    };
    let headers = raw.split("\r\n\r\n").next().unwrap_or_default();
    format!(
        "{headers}\nSubject: {}\n\n{}\n\n{}",
        parsed.subject().unwrap_or_default(),
        parsed.body_text(0).unwrap_or_default(),
        if parsed.html_body.is_empty() {
            Default::default()
        } else {
            parsed.body_html(0).unwrap_or_default()
        },
    )
}

pub fn link_token(text: &str) -> String {
    let start = text
        .find("token=")
        .map(|i| i + "token=".len())
        .expect("the mail has a link with a token");
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// The password test accounts are registered with.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running application.
pub struct TestApp {
    pub address: String,
    /// The management address (`STEWARD_METRICS_BIND`), when the test configured one.
    pub management_address: Option<String>,
    pub client: reqwest::Client,
    pub database: TestDatabase,
    /// A pool of the test's own onto the app's database, for arranging and checking state.
    pub db: Database,
    pub data_dir: tempfile::TempDir,
    handle: ServerHandle,
}

/// A test configuration: port 0, a temporary data directory, the given database.
pub fn test_config(database: &TestDatabase, data_dir: &std::path::Path) -> Config {
    Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        // With row-level security: the server as the application role, migrations as the owner.
        database_url: Some(database.app_url.clone().unwrap_or_else(|| database.url.clone())),
        database_migration_url: database.app_url.as_ref().map(|_| database.url.clone()),
        rls_enforce: database.app_url.as_ref().map(|_| true),
        database_max_connections: 8,
        workers: Some(2),
        // Light hashing keeps account-heavy tests fast; the hashing tests use the real cost.
        password_hash_memory_kib: 8 * 1024,
        password_hash_iterations: 1,
        // Tests come from one address; the rate-limit tests set their own limits.
        rate_limit_register_per_hour: 100_000,
        rate_limit_login_per_hour: 100_000,
        rate_limit_password_reset_per_hour: 100_000,
        rate_limit_refresh_per_hour: 100_000,
        outbox_poll_ms: 50,
        push_poll_ms: 50,
        push_collapse_ms: 0,
        audit_seal_ms: 50,
        job_poll_ms: 50,
        // Webhook receivers are loopback servers inside the tests.
        webhook_allow_http: true,
        webhook_allowed_networks: vec!["127.0.0.0/8".parse().unwrap()],
        webhook_organization_networks: vec!["127.0.0.0/8".parse().unwrap()],
        events_poll_ms: 20,
        notification_mail_secs: 1,
        ..Config::default()
    }
}

/// A second instance on the same database and keys, as behind a load balancer.
pub async fn spawn_second_instance(first: &TestApp) -> (String, ServerHandle) {
    spawn_instance_with(first, |_| {}).await
}

/// Another instance on the same database and keys, configured differently.
pub async fn spawn_instance_with(
    first: &TestApp,
    customise: impl FnOnce(&mut Config),
) -> (String, ServerHandle) {
    let mut config = test_config(&first.database, first.data_dir.path());
    customise(&mut config);
    let application = Application::build(config).await.unwrap();
    let address = format!("http://127.0.0.1:{}", application.port());
    let handle = application.handle();
    tokio::spawn(application.run_until_stopped());
    (address, handle)
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts the app with a test configuration adjusted by `customise`.
pub async fn spawn_app_with(backend: Backend, customise: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_on(TestDatabase::create(backend).await, customise).await
}

/// Starts the app on a database the test prepared (roles, grants), configured by `customise`.
pub async fn spawn_app_on(database: TestDatabase, customise: impl FnOnce(&mut Config)) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&database, data_dir.path());
    customise(&mut config);
    let application = Application::build(config).await.unwrap();
    let address = format!("http://127.0.0.1:{}", application.port());
    let management_address = application
        .management_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    let handle = application.handle();
    tokio::spawn(application.run_until_stopped());
    let db = database.connect().await;
    TestApp {
        address,
        management_address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        database,
        db,
        data_dir,
        handle,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn get(&self, path: &str) -> impl Future<Output = Response> + 'static + use<> {
        let request = self.client.get(self.url(path));
        async move { request.send().await.unwrap() }
    }

    /// The request is built before the future is returned, so it borrows nothing.
    pub fn post_json(&self, path: &str, body: &Value) -> impl Future<Output = Response> + 'static + use<> {
        let request = self.client.post(self.url(path)).json(body);
        async move { request.send().await.unwrap() }
    }

    /// A request with `Authorization: Bearer <token>`.
    pub fn authed(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(token)
    }

    /// Registers an account and returns the token response's `data`.
    pub async fn register(&self, email: &str) -> Value {
        let response = self
            .post_json(
                "/api/v1/auth/register",
                &serde_json::json!({"email": email, "password": PASSWORD, "displayName": "Test User"}),
            )
            .await;
        expect_data(response, StatusCode::CREATED).await
    }

    /// Registers an account and returns its id and access token.
    pub async fn user(&self, email: &str) -> TestUser {
        let data = self.register(email).await;
        TestUser {
            id: data["user"]["id"].as_str().unwrap().parse().unwrap(),
            token: data["accessToken"].as_str().unwrap().to_owned(),
        }
    }

    /// [`Self::user`] for an owned address, handy for making many at once.
    pub async fn user_owned(&self, email: String) -> TestUser {
        self.user(&email).await
    }

    /// Grants a system role directly in the database.
    pub async fn grant(&self, user: uuid::Uuid, role: &str) {
        use steward_domain::accounts::AccountStore;
        let audit = steward_domain::AuditEntry::new(
            steward_domain::Actor::system(),
            steward_domain::AuditAction::known("admin.role_granted"),
            "user",
        );
        self.db.grant_system_role(user, role, &audit).await.unwrap();
    }

    /// A fresh application API key (`X-API-Key`), as `steward apikeys create` mints it.
    pub async fn api_key(&self) -> String {
        steward_api::devices::create_api_key(&self.db, "test app")
            .await
            .unwrap()
            .1
    }

    /// An organization created by `by` (a system admin) with `owner` as its owner; its id.
    pub async fn organization(&self, by: &TestUser, slug: &str, owner: &TestUser) -> String {
        let created = send(
            self,
            reqwest::Method::POST,
            "/api/admin/v1/organizations",
            by,
            Some(serde_json::json!({"name": slug, "slug": slug, "ownerUserId": owner.id})),
        )
        .await;
        expect_data(created, StatusCode::CREATED).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A group `owner` creates; its id.
    pub async fn group(&self, owner: &TestUser, name: &str) -> String {
        let created = send(
            self,
            reqwest::Method::POST,
            "/api/v1/groups",
            owner,
            Some(serde_json::json!({"name": name})),
        )
        .await;
        expect_data(created, StatusCode::CREATED).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `member` joins `group` with a fresh invite of `role` from `inviter`.
    pub async fn join(&self, group: &str, inviter: &TestUser, member: &TestUser, role: &str) {
        let invite = send(
            self,
            reqwest::Method::POST,
            &format!("/api/v1/groups/{group}/invites"),
            inviter,
            Some(serde_json::json!({"role": role})),
        )
        .await;
        let code = expect_data(invite, StatusCode::CREATED).await["code"].clone();
        let joined = send(
            self,
            reqwest::Method::POST,
            "/api/v1/groups/join",
            member,
            Some(serde_json::json!({"code": code})),
        )
        .await;
        expect_data(joined, StatusCode::OK).await;
    }

    /// Registers a device with the app's key as `owner`; answers (Steward's id, device token).
    pub async fn device(&self, key: &str, owner: &TestUser, identifier: &str) -> (String, String) {
        let registered = self
            .client
            .post(self.url("/api/v1/devices/register"))
            .header("x-api-key", key)
            .bearer_auth(&owner.token)
            .json(&serde_json::json!({"deviceId": identifier, "displayName": format!("Device {identifier}")}))
            .send()
            .await
            .unwrap();
        let data = expect_data(registered, StatusCode::CREATED).await;
        (
            data["id"].as_str().unwrap().to_owned(),
            data["deviceToken"].as_str().unwrap().to_owned(),
        )
    }

    /// Signs in and returns the token response's `data`.
    pub fn login(&self, email: &str, password: &str) -> impl Future<Output = Response> + 'static + use<> {
        self.post_json(
            "/api/v1/auth/login",
            &serde_json::json!({"email": email, "password": password}),
        )
    }

    /// Waits for a mail in the development outbox (`<data dir>/outbox/`, used when no SMTP
    /// server is configured) whose text contains `needle`: its header block, then its text and
    /// HTML parts decoded.
    pub async fn outbox_mail(&self, needle: &str) -> String {
        self.outbox_mail_with(&[needle]).await
    }

    /// The first mail in the outbox directory holding every one of `needles` (waits up to 10 s).
    pub async fn outbox_mail_with(&self, needles: &[&str]) -> String {
        let needle = needles.join(" + ");
        let outbox = self.data_dir.path().join("outbox");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let found = std::fs::read_dir(&outbox)
                .map(|dir| {
                    dir.filter_map(Result::ok)
                        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                        .map(|raw| readable_mail(&raw))
                        .collect()
                })
                .unwrap_or_else(|_| Vec::new())
                .into_iter()
                .find(|mail: &String| needles.iter().all(|needle| mail.contains(needle)));
            if let Some(mail) = found {
                return mail;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no mail containing {needle:?} in {}",
                outbox.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Audit actions recorded so far, oldest first.
    pub async fn audit_actions(&self) -> Vec<String> {
        use sea_orm::{EntityTrait, QueryOrder};
        use steward_persistence::entities::audit_logs;
        audit_logs::Entity::find()
            .order_by_asc(audit_logs::Column::Id)
            .all(self.db.connection())
            .await
            .unwrap()
            .into_iter()
            .map(|entry| entry.action)
            .collect()
    }

    /// Rows in `table` (a fixed name from the test, never input).
    pub async fn count_rows(&self, table: &str) -> i64 {
        use sea_orm::{ConnectionTrait, Statement};
        let connection = self.db.connection();
        let row = connection
            .query_one_raw(Statement::from_string(
                connection.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }

    pub async fn count_users(&self) -> i64 {
        self.count_rows("users").await
    }

    /// Stops the server (as a crash would, its background work ends with it) but keeps the
    /// database, for another instance to carry on.
    pub async fn stop_server(&self) {
        self.handle.stop(false).await;
    }

    /// Stops the server and waits for it, so the next test's database cleanup is quiet.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// Runs `steward maintenance run [--dry-run]` against the app's database, as an operator would
/// (a configuration file naming its data directory and database).
pub async fn run_maintenance(app: &TestApp, dry_run: bool) {
    use clap::Parser;
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
    let mut args = vec![
        "steward".to_owned(),
        "--config".to_owned(),
        config.display().to_string(),
        "maintenance".to_owned(),
        "run".to_owned(),
    ];
    if dry_run {
        args.push("--dry-run".to_owned());
    }
    steward::cli::run(steward::cli::Cli::parse_from(args))
        .await
        .unwrap();
}

/// A request as `user` with an optional JSON body, built now so the future borrows nothing
/// (handy for racing many at once).
pub fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    user: &TestUser,
    body: Option<Value>,
) -> impl Future<Output = Response> + 'static + use<> {
    let request = app.authed(method, path, &user.token);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    async move { request.send().await.unwrap() }
}

/// A registered account.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: uuid::Uuid,
    pub token: String,
}

/// Asserts a success envelope with `status` and returns its `data`.
pub async fn expect_data(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(actual, status, "unexpected status; body: {body}");
    assert_eq!(body["success"], true, "{body}");
    body["data"].clone()
}

/// Asserts an error envelope with `status` and `code`; returns the `error` member. Also checks
/// the envelope's `requestId` matches the `X-Request-Id` header.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    let actual = response.status();
    let header_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .expect("every response carries X-Request-Id");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type}; body: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["error"]["requestId"], header_id.as_str(), "{body}");
    body["error"].clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_database_replaces_only_the_database_name() {
        assert_eq!(
            database_url_for("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            database_url_for("postgres://u:p@h/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
    }
}
