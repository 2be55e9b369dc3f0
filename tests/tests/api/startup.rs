//! Start-up fails fast and says which setting is wrong.

use std::time::{Duration, Instant};

use steward::{Application, Config};

async fn build_error(config: Config) -> (String, Duration) {
    let started = Instant::now();
    let result = Application::build(config).await;
    let message = match result {
        Ok(_) => panic!("the server started against an unreachable database"),
        Err(error) => error.to_string(),
    };
    (message, started.elapsed())
}

#[tokio::test]
async fn an_unreachable_postgres_fails_fast_naming_the_setting() {
    let data_dir = tempfile::tempdir().unwrap();
    let config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.path().to_path_buf(),
        database_url: Some("postgres://steward:secret@127.0.0.1:1/steward".to_owned()),
        database_connect_timeout_secs: 2,
        ..Config::default()
    };
    let (message, elapsed) = build_error(config).await;
    assert!(message.starts_with("STEWARD_DATABASE_URL"), "{message}");
    assert!(message.contains("cannot connect"), "{message}");
    assert!(
        !message.contains("secret"),
        "the password is not printed: {message}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[tokio::test]
async fn a_taken_port_names_the_bind_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let config = Config {
        bind: taken.local_addr().unwrap(),
        data_dir: data_dir.path().to_path_buf(),
        ..Config::default()
    };
    let (message, _) = build_error(config).await;
    assert!(message.starts_with("STEWARD_BIND"), "{message}");
}
