//! The `steward` binary as an operator uses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn steward(args: &[&str], env: &[(&str, &str)], data_dir: &std::path::Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_steward"));
    command
        .args(args)
        .current_dir(data_dir)
        .env("STEWARD_DATA_DIR", data_dir);
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("STEWARD_")) {
        if key != "STEWARD_DATA_DIR" {
            command.env_remove(key);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn migrations() -> usize {
    use steward_migration::MigratorTrait;
    steward_migration::Migrator::migrations().len()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_configuration_fails_with_one_line_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let output = steward(&["serve"], &[("STEWARD_BIND", "nowhere")], dir.path());
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(
        message.starts_with("error: invalid configuration: STEWARD_BIND"),
        "{message}"
    );
    // Another program's variable that is not UTF-8 is no reason to crash; an empty switch
    // written in lower case leaves the default, as in upper case.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let mut command = Command::new(env!("CARGO_BIN_EXE_steward"));
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("STEWARD_")) {
            command.env_remove(key);
        }
        let output = command
            .args(["config", "check"])
            .current_dir(dir.path())
            .env("STEWARD_DATA_DIR", dir.path())
            .env("steward_user_mgmt_core", "")
            .env("NOT_STEWARDS", std::ffi::OsStr::from_bytes(b"\xff\xfe"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(shown["user_mgmt_core"], true);
    }
    // A switch that is neither on nor off, likewise.
    let output = steward(&["serve"], &[("STEWARD_USER_MGMT_CORE", "perhaps")], dir.path());
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert_eq!(message.trim_end().lines().count(), 1, "{message}");
    assert!(
        message.starts_with("error: invalid configuration: STEWARD_USER_MGMT_CORE")
            && message.contains("use 1, true, yes or on, or 0, false, no or off"),
        "{message}"
    );
}

#[test]
fn an_unreachable_database_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = steward(
        &["serve"],
        &[
            ("STEWARD_DATABASE_URL", "postgres://postgres@127.0.0.1:1/steward"),
            ("STEWARD_DATABASE_CONNECT_TIMEOUT_SECS", "2"),
            ("STEWARD_LOG_LEVEL", "error"),
        ],
        dir.path(),
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(started.elapsed() < Duration::from_secs(10));
    let message = stderr(&output);
    assert!(
        message.contains("error: STEWARD_DATABASE_URL: cannot connect to the database"),
        "{message}"
    );
}

#[test]
fn migrate_commands_report_applied_and_pending_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = [("STEWARD_LOG_LEVEL", "error")];
    let status = steward(&["migrate", "status"], &quiet, dir.path());
    assert!(status.status.success(), "{}", stderr(&status));
    let text = String::from_utf8(status.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|line| line.starts_with("pending")).count(),
        migrations(),
        "{text}"
    );

    let up = steward(&["migrate", "up"], &quiet, dir.path());
    let text = String::from_utf8(up.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|line| line.starts_with("applied")).count(),
        migrations(),
        "{text}"
    );

    let down = steward(&["migrate", "down", "--steps", "2"], &quiet, dir.path());
    let text = String::from_utf8(down.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|line| line.starts_with("pending")).count(),
        2,
        "{text}"
    );

    let refused = steward(&["migrate", "fresh"], &quiet, dir.path());
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("--yes"));

    let fresh = steward(&["migrate", "fresh", "--yes"], &quiet, dir.path());
    let text = String::from_utf8(fresh.stdout).unwrap();
    assert_eq!(
        text.lines().filter(|line| line.starts_with("applied")).count(),
        migrations(),
        "{text}"
    );
    assert!(dir.path().join("steward.db").exists());
}

#[test]
fn openapi_prints_the_spec_and_keys_generate_prints_a_pem() {
    let dir = tempfile::tempdir().unwrap();
    let spec = steward(&["openapi"], &[], dir.path());
    assert!(spec.status.success());
    let spec: serde_json::Value = serde_json::from_slice(&spec.stdout).unwrap();
    assert_eq!(spec["info"]["title"], "Steward");

    let key = steward(&["keys", "generate"], &[], dir.path());
    assert!(key.status.success());
    let pem = String::from_utf8(key.stdout).unwrap();
    assert!(steward_auth::SigningKeyPem::parse(pem).is_ok());

    let path = dir.path().join("new.pem");
    let written = steward(
        &["keys", "generate", "--out", path.to_str().unwrap()],
        &[],
        dir.path(),
    );
    assert!(written.status.success(), "{}", stderr(&written));
    assert!(steward_auth::SigningKeyPem::parse(std::fs::read_to_string(&path).unwrap()).is_ok());
    let again = steward(
        &["keys", "generate", "--out", path.to_str().unwrap()],
        &[],
        dir.path(),
    );
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing key file is never overwritten"
    );
}

#[test]
fn admin_create_makes_a_super_admin_and_promotes_existing_accounts() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let light = [
        ("STEWARD_LOG_LEVEL", "error"),
        ("STEWARD_PASSWORD_HASH_MEMORY_KIB", "8192"),
        ("STEWARD_PASSWORD_HASH_ITERATIONS", "1"),
    ];
    let mut command = Command::new(env!("CARGO_BIN_EXE_steward"));
    command
        .args([
            "admin",
            "create",
            "--init",
            "--email",
            "Root@Example.com",
            "--password-stdin",
        ])
        .current_dir(dir.path())
        .env("STEWARD_DATA_DIR", dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (key, value) in light {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long admin passphrase\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("created root@example.com"), "{text}");

    let again = steward(
        &["admin", "create", "--email", "root@example.com"],
        &light,
        dir.path(),
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        String::from_utf8(again.stdout)
            .unwrap()
            .starts_with("granted super_admin to root@example.com")
    );

    let weak = steward(
        &["admin", "create", "--email", "new@example.com"],
        &light,
        dir.path(),
    );
    assert_eq!(weak.status.code(), Some(2));
    assert!(stderr(&weak).contains("--password-stdin"), "{}", stderr(&weak));
}

#[test]
fn keys_rotate_adds_a_key_beside_the_existing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let first = steward(&["keys", "rotate"], &[], dir.path());
    assert!(first.status.success(), "{}", stderr(&first));
    std::thread::sleep(Duration::from_millis(5));
    let second = steward(&["keys", "rotate"], &[], dir.path());
    assert!(second.status.success(), "{}", stderr(&second));
    let mut files: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2);
    assert_eq!(
        String::from_utf8(second.stdout).unwrap().trim(),
        files[1].display().to_string()
    );
}

#[test]
fn a_command_prints_only_its_result_on_stdout_and_logs_without_colour_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    // Without --init a command does not create a database: it says where it looked.
    let refused = steward(&["apikeys", "create", "--name", "script"], &[], dir.path());
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--init"), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(&dir.path().join("steward.db").display().to_string()),
        "{}",
        stderr(&refused)
    );
    assert!(refused.stdout.is_empty());
    assert!(!dir.path().join("steward.db").exists(), "nothing was created");
    // With it, the first command migrates a new database (log lines) and prints one key.
    let output = steward(
        &["apikeys", "create", "--init", "--name", "script"],
        &[],
        dir.path(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("stw_key_"), "{stdout}");
    let logs = stderr(&output);
    assert!(logs.contains("migration"), "the logs went to stderr: {logs}");
    // stderr is a pipe here, not a terminal: no colour codes.
    assert!(!logs.contains('\u{1b}'), "{logs:?}");
}

#[test]
fn a_port_in_use_is_reported_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = steward(&["serve"], &[("STEWARD_BIND", address.as_str())], dir.path());
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains(&address), "{message}");
    // Refused before the database or the keys were made.
    assert!(!dir.path().join("steward.db").exists(), "{message}");
    assert!(!dir.path().join("keys").exists(), "{message}");
}

#[test]
fn config_check_prints_the_effective_values_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let output = steward(
        &["config", "check"],
        &[
            ("STEWARD_BIND", "127.0.0.1:9123"),
            ("STEWARD_SMTP_URL", "smtp://mailer:hunter2@mail.example.com:587"),
            ("STEWARD_PUSH_WEBHOOK_URL", "https://push.example.com/hook"),
            ("STEWARD_PUSH_WEBHOOK_SECRET", "webhook-secret-value"),
            (
                "STEWARD_REDIS_URL",
                "redis://:redis-secret@cache.example.com:6379/0",
            ),
        ],
        dir.path(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["bind"], "127.0.0.1:9123");
    assert_eq!(shown["smtp_url"], "smtp://mailer:***@mail.example.com:587");
    assert_eq!(shown["push_webhook_secret"], "***");
    assert_eq!(shown["redis_url"], "redis://:***@cache.example.com:6379/0");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains("hunter2") && !text.contains("webhook-secret-value") && !text.contains("redis-secret"),
        "{text}"
    );
    // Nothing was created: checking is not starting.
    assert!(!dir.path().join("steward.db").exists());
    let bad = steward(&["config", "check"], &[("STEWARD_BND", "x")], dir.path());
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("did you mean STEWARD_BIND"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn serve_takes_its_main_settings_as_flags_that_win_over_the_environment() {
    let help = steward(&["serve", "--help"], &[], std::path::Path::new("."));
    let text = String::from_utf8_lossy(&help.stdout).into_owned();
    for flag in ["--bind", "--data-dir", "--database-url", "--config"] {
        assert!(text.contains(flag), "{text}");
    }
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = steward(
        &["serve", "--bind", &address],
        &[("STEWARD_BIND", "127.0.0.1:0")],
        dir.path(),
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(&address),
        "the flag won: {}",
        stderr(&output)
    );
    let bad = steward(&["serve", "--database-url", "mysql://x"], &[], dir.path());
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

/// The README's "First steps" shell blocks, run as written (with `curl` and `jq`) against a
/// fresh server: only the address and the binary's path are put in for the test's.
#[test]
fn the_readme_first_steps_run_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme
        .split("## First steps against a running server")
        .nth(1)
        .expect("the README has its first steps")
        .split("\n## ")
        .next()
        .unwrap();
    let blocks: Vec<&str> = section
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 2, "{section}");
    // The blocks run here, as the inventory of the docs' examples names them.
    let script = blocks.concat();
    assert!(script.contains("# Ann creates her account"), "{script}");
    assert!(
        script.contains("API_KEY=$(./target/release/steward apikeys create"),
        "{script}"
    );
    // "Two commands": `cargo run --release` is `steward serve` with the defaults, which this
    // test runs from the built binary (and CI runs `cargo test --workspace`).
    let two = docs_block("README.md", "cargo run --release");
    assert!(two.contains("cargo test --workspace"), "{two}");
    let have_tools = Command::new("bash")
        .args(["-c", "command -v curl && command -v jq"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !have_tools {
        assert!(
            std::env::var("CI").is_err(),
            "curl and jq are needed to run the README's first steps"
        );
        eprintln!("skipped: curl or jq is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    /// Stops the server however the test ends.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // As the README has it: run from the checkout, the data in ./data (here under a temporary
    // directory), the CLI run from the same place.
    let mut server = Command::new(env!("CARGO_BIN_EXE_steward"));
    server
        .arg("serve")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("STEWARD_")) {
        server.env_remove(key);
    }
    server
        .env("STEWARD_BIND", format!("127.0.0.1:{port}"))
        .env("STEWARD_LOG_LEVEL", "warn");
    let mut server = Running(server.spawn().unwrap());
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let script = blocks
        .concat()
        .replace("localhost:8080", &format!("127.0.0.1:{port}"))
        .replace("./target/release/steward", env!("CARGO_BIN_EXE_steward"));
    let mut shell = Command::new("bash");
    shell
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path());
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("STEWARD_")) {
        shell.env_remove(key);
    }
    let output = shell.output().unwrap();
    assert!(
        dir.path().join("data/steward.db").exists(),
        "the server's database is ./data"
    );
    // The container health check's probe: ready while the server runs, a failure once it is gone.
    let bind = format!("127.0.0.1:{port}");
    let ready = steward(&["health"], &[("STEWARD_BIND", &bind)], dir.path());
    assert!(ready.status.success(), "{}", stderr(&ready));
    assert_eq!(String::from_utf8_lossy(&ready.stdout).trim(), "ok");
    let _ = server.0.kill();
    let _ = server.0.wait();
    let gone = steward(&["health", "--live"], &[("STEWARD_BIND", &bind)], dir.path());
    // 1, what container health checks read as unhealthy (Docker reserves 2).
    assert_eq!(gone.status.code(), Some(1), "{}", stderr(&gone));
    assert!(stderr(&gone).contains("no answer"), "{}", stderr(&gone));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}\n{}", stderr(&output));
    assert!(stdout.contains("\"ann@example.com\""), "{stdout}");
    assert!(stdout.contains("\"member\""), "{stdout}");
    assert!(stdout.contains("\"locked\": true"), "{stdout}");
    assert_eq!(
        stdout.trim_end().lines().last(),
        Some("SETTING_LOCKED"),
        "{stdout}"
    );
}

/// The fenced block of `file` (relative to the checkout) that holds `needle`.
fn docs_block(file: &str, needle: &str) -> String {
    let text = std::fs::read_to_string(format!("{}/../../{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let blocks: Vec<&str> = text
        .split("```")
        .skip(1)
        .step_by(2)
        .filter(|block| block.contains(needle))
        .collect();
    assert_eq!(blocks.len(), 1, "{file}: one block holds {needle:?}");
    // Past the info string (`sh`, `toml`, or nothing).
    blocks[0].split_once('\n').unwrap().1.to_owned()
}

/// `steward <args> --help`, which must succeed.
fn help(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "steward {args:?} --help: {}",
        stderr(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The subcommands a help text lists under `Commands:`.
fn subcommands(help: &str) -> Vec<String> {
    help.split("Commands:")
        .nth(1)
        .map(|list| {
            list.lines()
                .skip(1)
                .take_while(|line| line.starts_with("  "))
                .filter_map(|line| line.split_whitespace().next())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The README's CLI overview: each line's command and subcommands exist, and each flag it
/// shows is one the command (or one of its subcommands) takes.
#[test]
fn the_readme_cli_overview_names_real_commands_and_flags() {
    let overview = docs_block("README.md", "steward [--config steward.toml] [serve]");
    let top = help(&[]);
    let commands = subcommands(&top);
    let mut checked = 0;
    for line in overview.lines().filter(|line| line.starts_with("steward ")) {
        // The syntax, before the description (two or more spaces apart).
        let syntax = line.split("  ").next().unwrap();
        let tokens: Vec<String> = syntax
            .split(|c: char| c.is_whitespace() || c == '|')
            .map(|token| token.trim_matches(|c| c == '[' || c == ']').to_owned())
            .filter(|token| !token.is_empty())
            .skip(1)
            .collect();
        let command = tokens.iter().find(|token| commands.contains(token)).cloned();
        let mut helps = vec![top.clone()];
        if let Some(command) = &command {
            let own = help(&[command]);
            for sub in subcommands(&own) {
                if sub != "help" {
                    helps.push(help(&[command, &sub]));
                }
            }
            helps.push(own);
        }
        let all = helps.concat();
        let subs = command
            .as_deref()
            .map(|command| subcommands(&help(&[command])))
            .unwrap_or_default();
        let mut previous_flag = false;
        for token in &tokens {
            if token.starts_with("--") {
                assert!(
                    all.contains(token.as_str()),
                    "{line}: {token} is not a flag of the command"
                );
                previous_flag = true;
                continue;
            }
            let word = token.chars().all(|c| c.is_ascii_lowercase() || c == '-');
            if word && !previous_flag && Some(token) != command.as_ref() {
                assert!(
                    subs.contains(token) || commands.contains(token),
                    "{line}: {token} is not a subcommand"
                );
            }
            previous_flag = false;
        }
        checked += 1;
    }
    assert!(checked >= 10, "{overview}");
}

/// The shell examples of docs/ run as written, in a fresh data directory, in the order an
/// operator would meet them: migrations, the first admin, API keys, the OIDC role map, the
/// example configuration file. (The break-glass `admin reset-mfa` needs an account with a second
/// factor: `admin_mfa.rs` runs it as documented against a test server.)
#[test]
fn the_docs_shell_examples_run_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = docs_block("docs/operations.md", "steward migrate fresh --yes");
    let admin = docs_block(
        "docs/authentication.md",
        "steward admin create --email admin@example.com --password-stdin",
    );
    let keys = docs_block("docs/devices.md", "steward apikeys create --name \"family app\"")
        .replace("<id>", "\"$(steward apikeys list | cut -f1 | head -n1)\"");
    let oidc = docs_block("docs/federation.md", "export STEWARD_OIDC_GROUP_ROLE_MAP=");
    let script = format!(
        "steward() {{ \"$BINARY_UNDER_TEST\" \"$@\"; }}\n\
         steward migrate up --init 2>/dev/null || steward migrate up\n\
         {migrate}\n{admin}\n{keys}\n{oidc}\nsteward config check\n"
    );
    let mut shell = Command::new("bash");
    shell
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("BINARY_UNDER_TEST", env!("CARGO_BIN_EXE_steward"));
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("STEWARD_")) {
        shell.env_remove(key);
    }
    shell
        .env("STEWARD_DATA_DIR", dir.path())
        .env("STEWARD_LOG_LEVEL", "error");
    let output = shell.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}\n{}", stderr(&output));
    assert!(
        stdout.contains("stw_key_"),
        "apikeys create printed a key: {stdout}"
    );
    assert!(
        stdout.contains("revoked"),
        "apikeys list shows the state: {stdout}"
    );
    assert!(
        stdout.contains("ops=user_admin"),
        "config check shows the role map: {stdout}"
    );

    // The example file of docs/configuration.md, with keys where it names them.
    let example = docs_block("docs/configuration.md", "jwt_private_keys = [");
    let keys_dir = dir.path().join("etc-keys");
    std::fs::create_dir(&keys_dir).unwrap();
    for name in ["2026-01.pem", "2026-07.pem"] {
        let made = steward(
            &["keys", "generate", "--out", keys_dir.join(name).to_str().unwrap()],
            &[],
            dir.path(),
        );
        assert!(made.status.success(), "{}", stderr(&made));
    }
    let file = dir.path().join("steward.toml");
    std::fs::write(
        &file,
        example.replace("/etc/steward/keys/", &format!("{}/", keys_dir.display())),
    )
    .unwrap();
    let checked = steward(
        &["--config", file.to_str().unwrap(), "config", "check"],
        &[],
        dir.path(),
    );
    assert!(checked.status.success(), "{}", stderr(&checked));
    let shown: serde_json::Value = serde_json::from_slice(&checked.stdout).unwrap();
    assert_eq!(shown["bind"], "0.0.0.0:8080");
    assert_eq!(shown["public_url"], "https://steward.example.com");
    assert_eq!(shown["log_format"], "json");
    assert!(
        !String::from_utf8_lossy(&checked.stdout).contains("secret@db"),
        "the password is masked"
    );
}

/// What the container image runs, read from the Containerfile: its `ENV`, `USER`, `CMD` and
/// `HEALTHCHECK`. No container engine is needed: the binary runs with the image's environment
/// (the volume and port put in for the test's), as the image's user when the test may switch
/// users, and the health check's command must pass while it runs.
#[test]
fn the_binary_runs_as_the_container_image_runs_it() {
    let containerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Containerfile")).unwrap();
    // Instructions, with `\` continuations joined.
    let joined = containerfile.replace("\\\n", " ");
    let instruction = |name: &str| -> Vec<String> {
        joined
            .lines()
            .filter_map(|line| line.strip_prefix(&format!("{name} ")))
            .map(|rest| rest.trim().to_owned())
            .collect()
    };
    let exec_form = |text: &str| -> Vec<String> { serde_json::from_str(text).unwrap() };
    let env: Vec<(String, String)> = instruction("ENV")
        .iter()
        .flat_map(|line| {
            line.split_whitespace()
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap();
                    (key.to_owned(), value.to_owned())
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let value = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    assert_eq!(value("STEWARD_DATA_DIR").as_deref(), Some("/data"));
    assert_eq!(value("STEWARD_BIND").as_deref(), Some("0.0.0.0:8080"));
    assert_eq!(instruction("VOLUME"), vec![r#"["/data"]"#.to_owned()]);
    assert_eq!(instruction("EXPOSE"), vec!["8080".to_owned()]);
    let user = instruction("USER").pop().expect("the image names its user");
    assert_eq!(user, "65532:65532", "a non-root user");
    let entrypoint = exec_form(&instruction("ENTRYPOINT").pop().unwrap());
    assert_eq!(entrypoint, vec!["/usr/local/bin/steward"]);
    let command = exec_form(&instruction("CMD").pop().unwrap());
    let healthcheck = instruction("HEALTHCHECK").pop().unwrap();
    let probe = exec_form(healthcheck.split_once("CMD ").unwrap().1.trim());
    assert_eq!(
        probe[0], entrypoint[0],
        "the health check runs the binary itself (no curl in the image)"
    );

    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("data");
    std::fs::create_dir(&volume).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0");
    let image_env = |command: &mut Command| {
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("STEWARD_")) {
            command.env_remove(key);
        }
        for (key, value) in &env {
            let value = match key.as_str() {
                "STEWARD_DATA_DIR" => volume.display().to_string(),
                "STEWARD_BIND" => format!("0.0.0.0:{port}"),
                _ => value.clone(),
            };
            command.env(key, value);
        }
        if root {
            use std::os::unix::process::CommandExt;
            command.uid(65532).gid(65532);
        }
    };
    if root {
        // As the image's volume: owned by its user. Its parent must be passable for that user.
        Command::new("chown")
            .args(["65532:65532", volume.to_str().unwrap()])
            .status()
            .unwrap();
        Command::new("chmod")
            .args(["0711", dir.path().to_str().unwrap()])
            .status()
            .unwrap();
    }
    let mut server = Command::new(env!("CARGO_BIN_EXE_steward"));
    server
        .args(&command)
        .current_dir("/")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    image_env(&mut server);
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Running(server.spawn().unwrap());
    let health = || {
        let mut probe_command = Command::new(env!("CARGO_BIN_EXE_steward"));
        probe_command.args(&probe[1..]).current_dir("/");
        image_env(&mut probe_command);
        probe_command.output().unwrap()
    };
    let started = Instant::now();
    loop {
        let answer = health();
        if answer.status.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never healthy: {}",
            stderr(&answer)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        volume.join("steward.db").exists(),
        "the database is on the volume"
    );
    assert!(volume.join("keys").exists(), "development keys are on the volume");
    let _ = server.0.kill();
    let output = server.0.wait_with_output_of_stderr();
    // JSON logs, one object per line.
    let first = output.lines().next().unwrap_or_default().to_owned();
    assert!(
        serde_json::from_str::<serde_json::Value>(&first).is_ok(),
        "JSON logs: {output}"
    );
}

trait StderrOfKilled {
    fn wait_with_output_of_stderr(&mut self) -> String;
}

impl StderrOfKilled for std::process::Child {
    fn wait_with_output_of_stderr(&mut self) -> String {
        use std::io::Read;
        let _ = self.wait();
        let mut text = String::new();
        if let Some(mut stderr) = self.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    }
}
