//! The crate graph keeps its promises (Lemmy's `cargo tree -i` idea): the domain is free of IO
//! and frameworks so it can be embedded anywhere; the use cases (`steward-app`) and the token
//! machinery (`steward-auth`) know no web framework, no ORM and no database driver, so another
//! Rust service runs them over its own store.

use std::process::Command;

/// The normal and build dependencies of `package`, one name per line, the package first.
fn dependencies(package: &str) -> Vec<String> {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace)
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).unwrap();
    let names: Vec<String> = tree
        .lines()
        .map(|line| line.split_whitespace().next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names.first().map(String::as_str), Some(package), "{tree}");
    names
}

fn assert_free_of(package: &str, forbidden: &[&str]) {
    let names = dependencies(package);
    for name in names.iter().skip(1) {
        for prefix in forbidden {
            assert!(
                !name.starts_with(prefix),
                "{package} depends on {name}:\n{}",
                names.join("\n")
            );
        }
    }
}

/// Web frameworks, OpenAPI generators, ORMs and database drivers.
const FRAMEWORKS: [&str; 9] = [
    "actix",
    "utoipa",
    "sea-orm",
    "sea-query",
    "sea-schema",
    "sqlx",
    "tokio-postgres",
    "rusqlite",
    "axum",
];

#[test]
fn the_domain_depends_on_no_database_web_or_runtime_crate() {
    assert_free_of(
        "steward-domain",
        &[
            "sea-orm",
            "sea-query",
            "sqlx",
            "actix",
            "utoipa",
            "tokio",
            "reqwest",
            "hyper",
            "steward-",
        ],
    );
}

#[test]
fn the_use_cases_know_no_web_framework_orm_or_driver() {
    assert_free_of("steward-app", &FRAMEWORKS);
    assert_free_of(
        "steward-app",
        &["steward-api", "steward-persistence", "steward-migration"],
    );
    // The use cases do depend on the rules and the token machinery, never on the binary.
    let names = dependencies("steward-app");
    assert!(!names.iter().any(|name| name == "steward"), "{names:?}");
    assert!(names.iter().any(|name| name == "steward-domain"), "{names:?}");
    assert!(names.iter().any(|name| name == "steward-auth"), "{names:?}");
}

#[test]
fn token_machinery_knows_no_web_framework_orm_or_driver() {
    assert_free_of("steward-auth", &FRAMEWORKS);
    assert_free_of(
        "steward-auth",
        &[
            "steward-api",
            "steward-app",
            "steward-persistence",
            "steward-migration",
        ],
    );
}

#[test]
fn only_the_server_wires_the_http_shell() {
    // The application core is reachable without the HTTP crate: the CLI's use cases come from
    // steward-app, and nothing but the binary depends on steward-api.
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace)
        .args([
            "tree",
            "--offline",
            "--workspace",
            "-i",
            "steward-api",
            "-e",
            "normal",
            "--depth",
            "1",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).unwrap();
    let dependents: Vec<&str> = tree
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        dependents
            .iter()
            .all(|name| *name == "steward" || *name == "steward-tests"),
        "{tree}"
    );
}
