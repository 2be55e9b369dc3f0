//! The domain crate stays free of IO and frameworks so it can be embedded anywhere.

use std::process::Command;

#[test]
fn the_domain_depends_on_no_database_web_or_runtime_crate() {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace)
        .args([
            "tree",
            "--offline",
            "-p",
            "steward-domain",
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
    assert!(
        tree.lines().next().unwrap().starts_with("steward-domain"),
        "{tree}"
    );
    let forbidden = [
        "sea-orm",
        "sea-query",
        "sqlx",
        "actix",
        "utoipa",
        "tokio",
        "reqwest",
        "hyper",
        "steward-",
    ];
    for line in tree.lines().skip(1) {
        let name = line.split_whitespace().next().unwrap_or_default();
        for prefix in forbidden {
            assert!(
                !name.starts_with(prefix),
                "steward-domain depends on {name}:\n{tree}"
            );
        }
    }
}
