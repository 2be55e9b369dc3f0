//! Every fenced block of README.md and docs/ is run by a test: the blocks of request lines by
//! `docs_requests`, each other one by the test named here, which reads it out of the Markdown
//! by a text only that block holds. A new block without a test, a test that no longer reads
//! its block, or a block that changed under its test fails here.

use steward_tests::docs;

use super::docs_requests::{CHECKED_ELSEWHERE, request_blocks};

/// (file, a text only that block holds, the test's source file, the test).
const CHECKED_BY: &[(&str, &str, &str, &str)] = &[
    // README
    (
        "README.md",
        "cargo run --release",
        "crates/server/tests/cli.rs",
        "the_readme_first_steps_run_as_written",
    ),
    (
        "README.md",
        "steward [--config steward.toml] [serve]",
        "crates/server/tests/cli.rs",
        "the_readme_cli_overview_names_real_commands_and_flags",
    ),
    (
        "README.md",
        "# Ann creates her account",
        "crates/server/tests/cli.rs",
        "the_readme_first_steps_run_as_written",
    ),
    (
        "README.md",
        "API_KEY=$(./target/release/steward apikeys create",
        "crates/server/tests/cli.rs",
        "the_readme_first_steps_run_as_written",
    ),
    // Configuration backup and restore
    (
        "docs/operations.md",
        "\"format\": \"steward-config\",",
        "tests/tests/api/config_backup.rs",
        "an_export_imported_into_an_empty_instance_reproduces_the_configuration",
    ),
    (
        "docs/operations.md",
        "{\"format\": \"steward-sealed\", \"content\": \"steward-config\",",
        "tests/tests/api/config_backup.rs",
        "an_export_imported_into_an_empty_instance_reproduces_the_configuration",
    ),
    (
        "docs/operations.md",
        "POST /api/admin/v1/config/import?dryRun=true&onConflict=skip",
        "tests/tests/api/config_backup.rs",
        "an_export_imported_into_an_empty_instance_reproduces_the_configuration",
    ),
    (
        "docs/operations.md",
        "{\"dryRun\": false, \"applied\": true, \"onConflict\": \"overwrite\",",
        "tests/tests/api/config_backup.rs",
        "an_export_imported_into_an_empty_instance_reproduces_the_configuration",
    ),
    (
        "docs/operations.md",
        "steward config export [--include",
        "tests/tests/api/config_backup.rs",
        "the_command_line_exports_and_imports_with_the_same_rules",
    ),
    // Device events
    (
        "docs/events.md",
        "POST /api/v1/devices/{deviceId}/events",
        "tests/tests/api/device_events.rs",
        "batches_are_checked_by_item_stored_once_and_read_with_every_filter",
    ),
    (
        "docs/events.md",
        "event: device_event",
        "tests/tests/api/device_events.rs",
        "streams_deliver_live_replay_after_a_reconnect_and_cross_instances",
    ),
    // Shell examples
    (
        "docs/admin-api.md",
        "steward admin reset-mfa --email",
        "tests/tests/api/admin_mfa.rs",
        "the_cli_removes_a_second_factor_when_nobody_can_sign_in_to_reset_it",
    ),
    (
        "docs/authentication.md",
        "steward admin create --email admin@example.com --password-stdin",
        "crates/server/tests/cli.rs",
        "the_docs_shell_examples_run_as_written",
    ),
    (
        "docs/devices.md",
        "steward apikeys create --name \"family app\"",
        "crates/server/tests/cli.rs",
        "the_docs_shell_examples_run_as_written",
    ),
    (
        "docs/federation.md",
        "export STEWARD_OIDC_GROUP_ROLE_MAP=",
        "crates/server/tests/cli.rs",
        "the_docs_shell_examples_run_as_written",
    ),
    (
        "docs/operations.md",
        "steward migrate fresh --yes",
        "crates/server/tests/cli.rs",
        "the_docs_shell_examples_run_as_written",
    ),
    (
        "docs/configuration.md",
        "jwt_private_keys = [",
        "crates/server/tests/cli.rs",
        "the_docs_shell_examples_run_as_written",
    ),
    (
        "docs/configuration.md",
        "[plans.",
        "crates/server/tests/example_config.rs",
        "every_value_the_example_shows_loads_as_a_configuration",
    ),
    // Answers and bodies
    (
        "docs/api-conventions.md",
        "{\"success\": true, \"data\": {\"id\": \"…\"}}",
        "tests/tests/api/docs_examples.rs",
        "the_envelopes_of_the_api_conventions_are_the_ones_served",
    ),
    (
        "docs/api-conventions.md",
        "\"meta\"",
        "tests/tests/api/docs_examples.rs",
        "the_envelopes_of_the_api_conventions_are_the_ones_served",
    ),
    (
        "docs/api-conventions.md",
        "\"success\": false",
        "tests/tests/api/docs_examples.rs",
        "the_envelopes_of_the_api_conventions_are_the_ones_served",
    ),
    (
        "docs/authentication.md",
        "\"tokenType\": \"Bearer\"",
        "tests/tests/api/docs_examples.rs",
        "the_envelopes_of_the_api_conventions_are_the_ones_served",
    ),
    (
        "docs/authentication.md",
        "\"mfaRequired\": true",
        "tests/tests/api/docs_examples.rs",
        "the_second_factor_answers_are_the_ones_served",
    ),
    (
        "docs/admin-api.md",
        "{\"mfa\": {\"enforced\": true",
        "tests/tests/api/docs_examples.rs",
        "the_second_factor_answers_are_the_ones_served",
    ),
    (
        "docs/admin-api.md",
        "{\"dryRun\": true, \"rows\": 2",
        "tests/tests/api/docs_requests.rs",
        "every_request_block_of_the_docs_runs_as_written",
    ),
    (
        "docs/admin-api.md",
        "{\"results\": [",
        "tests/tests/api/docs_requests.rs",
        "every_request_block_of_the_docs_runs_as_written",
    ),
    (
        "docs/settings-and-locks.md",
        "\"baseVersion\": 41",
        "tests/tests/api/docs_examples.rs",
        "the_sync_example_of_the_settings_guide_is_accepted_as_written",
    ),
    (
        "docs/organizations.md",
        "\"enrollmentToken\": \"stw_enr_…\", \"deviceId\"",
        "tests/tests/api/docs_examples.rs",
        "the_enrollment_request_of_the_organizations_guide_enrolls_as_written",
    ),
    (
        "docs/organizations.md",
        "\"serverUrl\": \"https://steward.example.com\"",
        "tests/tests/api/docs_examples.rs",
        "the_enrollment_request_of_the_organizations_guide_enrolls_as_written",
    ),
    (
        "docs/organizations.md",
        "the organization's quota of 10 devices",
        "tests/tests/api/docs_examples.rs",
        "the_quota_refusals_are_the_ones_served",
    ),
    (
        "docs/organizations.md",
        "the account's quota of 10 personal access tokens",
        "tests/tests/api/docs_examples.rs",
        "the_quota_refusals_are_the_ones_served",
    ),
    (
        "docs/devices.md",
        "POST /api/v1/devices/register",
        "tests/tests/api/docs_examples.rs",
        "the_device_registration_of_the_devices_guide_registers_as_written",
    ),
    (
        "docs/jobs.md",
        "devices/import?async=true",
        "tests/tests/api/docs_examples.rs",
        "the_job_answers_of_the_jobs_guide_are_the_ones_served",
    ),
    // Webhook payloads and receivers' verification code
    (
        "docs/events.md",
        "\"type\": \"user.created\"",
        "tests/tests/api/webhooks.rs",
        "the_documented_payload_and_verification_code_match_a_real_delivery",
    ),
    (
        "docs/events.md",
        "import hashlib, hmac, time",
        "tests/tests/api/webhooks.rs",
        "the_documented_payload_and_verification_code_match_a_real_delivery",
    ),
    (
        "docs/events.md",
        "const crypto = require(\"crypto\");",
        "tests/tests/api/webhooks.rs",
        "the_documented_payload_and_verification_code_match_a_real_delivery",
    ),
    (
        "docs/events.md",
        "use hmac::{Hmac, KeyInit, Mac};",
        "tests/tests/api/webhooks.rs",
        "the_documented_payload_and_verification_code_match_a_real_delivery",
    ),
];

/// Blocks that show a structure, not something to run: (file, text, why).
const NOT_EXAMPLES: &[(&str, &str, &str)] = &[
    (
        "docs/architecture.md",
        "steward (server: CLI, config, wiring)",
        "the crate graph; boundaries.rs checks the dependencies it shows",
    ),
    (
        "docs/mail.md",
        "mail-templates/",
        "a directory layout; the mail template tests load such a directory",
    ),
];

/// How `needle` is written in Rust source: as a plain string literal or inside a raw one.
fn quoted_in(source: &str, needle: &str) -> bool {
    let escaped = needle.replace('\\', "\\\\").replace('"', "\\\"");
    source.contains(&format!("\"{escaped}")) || source.contains(&escaped) || source.contains(needle)
}

#[test]
fn every_block_of_the_docs_is_run_by_a_test() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let run_as_requests: Vec<String> = request_blocks().iter().map(|(block, _)| block.place()).collect();
    let mut problems = Vec::new();
    for block in docs::blocks() {
        let claims = CHECKED_BY
            .iter()
            .filter(|(file, needle, ..)| block.file == *file && block.text.contains(needle))
            .count()
            + NOT_EXAMPLES
                .iter()
                .filter(|(file, needle, _)| block.file == *file && block.text.contains(needle))
                .count()
            + usize::from(run_as_requests.contains(&block.place()));
        if claims != 1 {
            problems.push(format!(
                "{}: {claims} tests claim this block (one should):\n{}",
                block.place(),
                block.text
            ));
        }
    }
    for (file, needle, source, test) in CHECKED_BY {
        let held = docs::blocks_of(file, &docs::read(file))
            .into_iter()
            .filter(|block| block.text.contains(needle))
            .count();
        if held != 1 {
            problems.push(format!("{file}: {held} blocks hold {needle:?} (one should)"));
        }
        let code = std::fs::read_to_string(root.join(source)).unwrap();
        if !code.contains(&format!("fn {test}(")) {
            problems.push(format!("{source} has no test {test}"));
        }
        if !quoted_in(&code, needle) {
            problems.push(format!("{source} does not read the block holding {needle:?}"));
        }
    }
    for (file, needle) in CHECKED_ELSEWHERE {
        if !CHECKED_BY.iter().any(|(f, n, ..)| f == file && n == needle) {
            problems.push(format!(
                "{file}: {needle:?} is left to another test that is not named"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
