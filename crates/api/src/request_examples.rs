//! An example request body for every operation that takes one, put into the served spec's
//! request bodies (`example` of each media type). A black-box test sends each one to a server
//! and requires it to be accepted as a request (not refused for its form), and a unit test
//! requires one for every operation with a body.

use serde_json::{Value, json};

/// A user id in the examples.
const USER: &str = "01938a5e-7a1b-7c3d-9e4f-5a6b7c8d9e0f";
/// Another id (a group, a policy, a device).
const OTHER: &str = "01938a5e-7a1b-7c3d-9e4f-5a6b7c8d9e10";

/// The example body of `operation_id` (a CSV text for the imports).
pub(crate) fn request_example(operation_id: &str) -> Option<Value> {
    let example = match operation_id {
        // Admin API: keys, groups, the IP allowlist, notifications
        "create_api_key" => json!({"name": "Family app"}),
        "export_config" => {
            json!({"include": ["settingDefinitions", "policies", "roles"], "passphrase": "correct horse battery staple"})
        }
        "import_config" => json!({"file": {
            "format": "steward-config",
            "schemaVersion": 1,
            "stewardVersion": "0.1.0",
            "createdAt": "2026-12-02T09:00:00Z",
            "exportedBy": "root@example.com",
            "include": ["roles"],
            "secretsIncluded": false,
            "checksum": "sha256:6d5a50a153891f198d1efe3f93c914ab1dbd677455511abbc141fa8174ef5be3",
            "data": {"roles": [{"name": "user_reader", "description": "Reads accounts", "permissions": ["sessions:read", "users:read"]}]}
        }}),
        "ingest_events" => json!({"events": [
            {"type": "app.installed", "occurredAt": "2026-12-03T09:58:12Z", "summary": "Maps 12.4 installed",
             "data": {"packageName": "com.example.maps", "version": "12.4"}},
            {"type": "battery.low", "occurredAt": "2026-12-03T09:59:40Z", "severity": "warning", "data": {"level": 9}}
        ]}),
        "set_event_retention" => json!({"days": 30}),
        "create_report_schedule" | "update_report_schedule" => json!({
            "name": "Weekly security summary",
            "reportType": "security_summary",
            "frequency": "weekly",
            "time": "08:30",
            "weekday": "monday",
            "timeZone": "Europe/Berlin",
            "format": "csv",
            "recipients": ["security@example.com", "cto@example.com"]
        }),
        "rotate_api_key" => json!({"overlapSeconds": 3600}),
        "admin_transfer_group" => json!({"userId": USER}),
        "create_allowlist_entry" => {
            json!({"cidr": "203.0.113.0/24", "name": "office", "description": "HQ uplink"})
        }
        "create_bypass_token" => json!({"reason": "on call from a hotel", "ttlHours": 4}),
        "set_allowlist_settings" => json!({"enabled": true}),
        "change_rls" => json!({"enable": true}),
        "delete_allowlist_entry" => json!({"force": false}),
        "update_allowlist_entry" => json!({"cidr": "203.0.113.0/25", "name": "office"}),
        "put_preferences" => json!({
            "emailEnabled": true, "emailSeverityThreshold": "high",
            "mutedRules": ["webhook_disabled"], "webhookUrl": null
        }),
        // Organizations and their fleets
        "create_organization" => json!({
            "name": "Acme Field Services", "slug": "acme",
            "description": "Field technicians' phones", "ownerUserId": USER
        }),
        "update_organization" => json!({"name": "Acme Field Services GmbH", "version": 3}),
        "import_fleet_devices" => {
            json!("deviceId,displayName,platform,serialNumber\nfield-001,Field phone 1,android,R58N1234\n")
        }
        "assign_fleet_device" => json!({"userId": USER, "groupId": OTHER}),
        "wipe_fleet_device" => json!({"expiresInSeconds": 86400}),
        "create_enrollment_token" => json!({"name": "Field crew, spring", "policyId": OTHER, "maxUses": 50}),
        "create_fleet_group" => json!({"name": "Field crew", "description": "Technicians on the road"}),
        "create_policy" | "update_policy" => json!({
            "name": "Baseline", "isDefault": true, "priority": 10,
            "settings": {"device.camera_enabled": false}, "locks": ["device.camera_enabled"]
        }),
        "apply_policy" | "unapply_policy" => json!({"deviceIds": [OTHER], "dryRun": true}),
        "set_quotas" => json!({"plan": "free", "overrides": {"devices": 15, "users": null}}),
        "add_org_user" => json!({"email": "tara@example.com", "role": "admin"}),
        "import_org_users" => json!("email,role\ntara@example.com,admin\n"),
        "change_org_user_role" => json!({"role": "viewer"}),
        // Roles and the setting catalog
        "create_role" => json!({
            "name": "helpdesk", "permissions": ["users:read", "users:unlock"],
            "description": "First-line support"
        }),
        "update_role" => json!({"permissions": ["users:read", "sessions:read"]}),
        "create_definition" | "update_definition" => json!({
            "key": "app.dark_mode", "category": "app", "valueType": "bool",
            "defaultValue": false, "description": "Dark theme", "isLockable": true
        }),
        // Admin API: accounts
        "create_user" => json!({
            "email": "new.hire@example.com", "displayName": "New Hire", "roles": ["support"],
            "locale": "en-GB"
        }),
        "bulk_users" => json!({"action": "lock", "userIds": [USER]}),
        "import_accounts" => json!(
            "email,displayName,roles,organizationSlug,orgRole\nann@example.com,Ann Example,support;auditor,,\n"
        ),
        "update_user" => json!({"displayName": "Tara Get", "locale": "en-GB", "timezone": "Europe/Berlin"}),
        "lock_user" => json!({"reason": "laptop reported stolen"}),
        "set_mfa_exemption" => {
            json!({"reason": "wall-display account", "expiresAt": "2030-01-01T00:00:00Z"})
        }
        "set_user_quotas" => json!({"plan": "free", "overrides": {"personal_access_tokens": 20}}),
        "admin_reset_password" => json!({"revokeSessions": true}),
        "put_role_overrides" => {
            json!({"enabled": true, "preserved": ["support"], "suppressed": ["user_admin"]})
        }
        "set_user_roles" => json!({"roles": ["support", "auditor"]}),
        "create_webhook" => json!({
            "url": "https://siem.example.com/hooks/steward",
            "events": ["user.*", "auth.account_locked"], "description": "SIEM"
        }),
        "update_webhook" => json!({"enabled": false, "version": 2}),
        "rotate_webhook_secret" => json!({"overlapSeconds": 86400}),
        // Accounts
        "accept_invitation" => json!({"token": "stw_inv_…", "password": "a long passphrase of mine"}),
        "forgot_password" => json!({"email": "ann@example.com"}),
        "login" => json!({"email": "ann@example.com", "password": "a long passphrase of mine"}),
        "login_mfa" => json!({"mfaToken": "eyJ…", "code": "123456"}),
        "delete_me" => json!({"password": "a long passphrase of mine"}),
        "update_me" => json!({"displayName": "Ann Example", "locale": "de-AT", "timezone": "Europe/Vienna"}),
        "change_password" => json!({
            "currentPassword": "a long passphrase of mine", "newPassword": "an even longer passphrase"
        }),
        "create_token" => json!({
            "name": "backup script", "scopes": ["account:read"], "expiresAt": "2030-01-01T00:00:00Z"
        }),
        "regenerate_recovery_codes" => json!({"code": "123456"}),
        "disable_totp" => json!({"password": "a long passphrase of mine", "code": "123456"}),
        "verify_totp" => json!({"code": "123456"}),
        "provider_sign_in" => json!({"idToken": "eyJ…", "nonce": "n-0S6_WzA2Mj"}),
        "link_provider" => json!({"idToken": "eyJ…", "nonce": "n-0S6_WzA2Mj", "code": "123456"}),
        "refresh" => json!({"refreshToken": "Xk3…"}),
        "register" => json!({
            "email": "ann@example.com", "password": "a long passphrase of mine", "displayName": "Ann",
            "locale": "de-AT"
        }),
        "reset_password" => json!({"token": "…", "newPassword": "an even longer passphrase"}),
        "verify_email" => json!({"token": "…"}),
        // Devices and settings
        "enroll_device" => json!({
            "enrollmentToken": "stw_enr_…", "deviceId": "field-001", "displayName": "Field phone 1",
            "platform": "android", "osVersion": "14", "appVersion": "3.2.0",
            "serialNumber": "R58N1234", "manufacturer": "Samsung", "model": "SM-G991B"
        }),
        "register_device" => json!({
            "deviceId": "a1b2c3", "displayName": "Ann's phone", "platform": "android",
            "osVersion": "14", "appVersion": "3.2.0"
        }),
        "acknowledge_command" => json!({"result": {"outcome": "wiped"}}),
        "update_settings" => json!({"settings": {"device.camera_enabled": false}, "version": 4}),
        "update_locks" => json!({"locks": [{"key": "device.camera_enabled", "locked": true}], "version": 4}),
        "sync_settings" => json!({
            "baseVersion": 0, "changes": {"location.high_accuracy": true}, "appliedVersion": 0,
            "failures": [{"key": "device.camera_enabled", "reason": "MDM refused"}]
        }),
        "update_setting" => json!({"value": false, "version": 4}),
        "lock_setting" => json!({"value": false, "reason": "homework time"}),
        "request_unlock" => json!({"reason": "I need the camera for a school project"}),
        // Groups and unlock requests
        "create_group" => json!({"name": "Smith family", "description": "Our phones and tablets"}),
        "join_group" => json!({"code": "K7QX-92HM"}),
        "update_group" => json!({"name": "Smith-Jones family", "version": 2}),
        "create_invite" => json!({"role": "member", "expiresInHours": 72, "maxUses": 1}),
        "change_member_role" => json!({"role": "admin"}),
        "transfer_group" => json!({"userId": USER}),
        "approve_unlock" => json!({"durationMinutes": 5, "note": "five minutes"}),
        "deny_unlock" => json!({"note": "not tonight"}),
        "transfer_device" => json!({"toEmail": "sam@example.com"}),
        _ => return None,
    };
    Some(example)
}

/// Puts [`request_example`] into every request body of `document`.
pub(crate) fn add_request_examples(document: &mut Value) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            let Some(id) = operation.get("operationId").and_then(Value::as_str) else {
                continue;
            };
            let Some(example) = request_example(id) else {
                continue;
            };
            if let Some(content) = operation
                .pointer_mut("/requestBody/content")
                .and_then(Value::as_object_mut)
            {
                for media in content.values_mut() {
                    if let Some(media) = media.as_object_mut() {
                        media.insert("example".to_owned(), example.clone());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_operation_with_a_body_has_an_example() {
        let document = crate::openapi();
        let mut missing = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if operation.get("requestBody").is_none() {
                    continue;
                }
                let content = operation["requestBody"]["content"].as_object().unwrap();
                if content.values().any(|media| media.get("example").is_none()) {
                    missing.push(format!("{method} {path} ({})", operation["operationId"]));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "request bodies without an example: {missing:#?}"
        );
    }
}
