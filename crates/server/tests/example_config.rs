//! `steward.example.toml` is generated from docs/configuration.md's table (each setting's
//! meaning) and the built-in defaults (each value), so the sample, the docs and the code cannot
//! drift: this test regenerates it and compares (`BLESS_EXAMPLE_CONFIG=1` rewrites the file), then loads
//! every value it shows as a configuration file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;
use steward::config::Config;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (TOML key, the docs' default text, the docs' meaning) of every row of the settings table.
fn documented() -> Vec<(String, String, String)> {
    let docs = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    docs.lines()
        .filter(|line| line.starts_with("| `STEWARD_"))
        .flat_map(|line| {
            let inner = line.trim_start_matches("| ").trim_end_matches(" |");
            let mut columns = inner.splitn(3, " | ");
            // One row may document several variables: `STEWARD_A`, `STEWARD_B`.
            let variables = columns.next().unwrap().to_owned();
            let default = columns.next().unwrap_or_default().to_owned();
            let meaning = columns.next().unwrap_or_default().to_owned();
            variables
                .split(", ")
                .map(|variable| {
                    let key = variable
                        .trim_matches('`')
                        .trim_start_matches("STEWARD_")
                        .to_lowercase();
                    (key, default.clone(), meaning.clone())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A JSON default as a TOML value (`None` for what TOML cannot say: unset, maps).
fn toml_value(value: &Value) -> Option<String> {
    match value {
        Value::Null | Value::Object(_) => None,
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
        Value::String(text) => Some(Value::String(text.clone()).to_string()),
        Value::Array(items) => {
            let items: Option<Vec<String>> = items.iter().map(toml_value).collect();
            Some(format!("[{}]", items?.join(", ")))
        }
    }
}

fn generate() -> String {
    let defaults = serde_json::to_value(Config::default()).unwrap();
    let mut text = String::from(
        "# Steward's settings with their built-in defaults, generated from docs/configuration.md\n\
         # (what each one means) and the code's defaults by the test\n\
         # crates/server/tests/example_config.rs — do not edit by hand.\n\
         #\n\
         # Use: `steward --config steward.toml` (or STEWARD_CONFIG). Uncomment what you change;\n\
         # STEWARD_<SETTING> environment variables win over the file, and `steward config check`\n\
         # prints what is in effect. An unknown key stops start-up.\n",
    );
    let documented = documented();
    for (key, default, meaning) in &documented {
        let Some(value) = defaults.get(key) else {
            continue;
        };
        text.push_str(&format!("\n# {meaning}\n"));
        match toml_value(value) {
            Some(value) => text.push_str(&format!("# {key} = {value}\n")),
            None => text.push_str(&format!("# {key} =    (not set by default; docs: {default})\n")),
        }
    }
    // Quota plans are tables: the docs' example, commented out.
    let docs = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let plans = docs
        .split("## Quota plans")
        .nth(1)
        .and_then(|section| section.split("```toml\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("docs/configuration.md has a quota plans example");
    text.push_str(
        "\n# Quota plans (docs/configuration.md, \"Quota plans\"): one table per plan; a limit left\n\
         # out is unlimited. For example:\n",
    );
    for line in plans.lines() {
        if line.is_empty() {
            text.push_str("#\n");
        } else {
            text.push_str(&format!("# {line}\n"));
        }
    }
    text
}

#[test]
fn the_example_configuration_is_generated_from_the_docs_and_the_defaults() {
    let path = root().join("steward.example.toml");
    let generated = generate();
    if std::env::var("BLESS_EXAMPLE_CONFIG").is_ok() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "steward.example.toml is out of date with docs/configuration.md or the defaults: \
         run `BLESS_EXAMPLE_CONFIG=1 cargo test -p steward --test example_config` and commit it"
    );
    let documented = documented();
    let defaults = serde_json::to_value(Config::default()).unwrap();
    for key in defaults.as_object().unwrap().keys() {
        assert!(
            key == "plans" || documented.iter().any(|(documented, _, _)| documented == key),
            "the setting {key} is missing from docs/configuration.md's table"
        );
    }
    // The test suite's variables are documented beside the settings but are not settings.
    for (key, _, _) in documented
        .iter()
        .filter(|(key, _, _)| !["test_postgres_url", "require_postgres", "config"].contains(&key.as_str()))
    {
        assert!(
            defaults.get(key).is_some(),
            "docs/configuration.md documents {key}, which is not a setting"
        );
    }
}

#[test]
fn every_value_the_example_shows_loads_as_a_configuration() {
    let example = generate();
    let (settings, plans) = example
        .split_once("\n# Quota plans")
        .expect("the example ends with the quota plans");
    let uncommented: String = settings
        .lines()
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| line.contains(" = ") && !line.contains("(not set by default"))
        .filter(|line| {
            line.split(' ').next().is_some_and(|key| {
                key.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
        })
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(uncommented.lines().count() > 40, "{uncommented}");
    // The plans' tables after the settings, as TOML wants them.
    let tables: String = plans
        .lines()
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| line.starts_with("[plans.") || line.contains(" = "))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(tables.contains("[plans."), "{plans}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("steward.toml");
    std::fs::write(&file, format!("{uncommented}{tables}")).unwrap();
    // Loaded as an operator would check it, without this shell's STEWARD_* variables.
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_steward"));
    command
        .args(["config", "check", "--config"])
        .arg(&file)
        .current_dir(dir.path());
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("STEWARD_")) {
        command.env_remove(key);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}\n{uncommented}",
        String::from_utf8_lossy(&output.stderr)
    );
    let loaded: Value = serde_json::from_slice(&output.stdout).unwrap();
    let defaults = serde_json::to_value(Config::default()).unwrap();
    for line in uncommented.lines() {
        let key = line.split(' ').next().unwrap();
        assert_eq!(
            loaded[key], defaults[key],
            "{key}: the example's value is the default"
        );
    }
}
