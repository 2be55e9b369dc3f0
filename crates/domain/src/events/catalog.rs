//! The event catalog: every audit action Steward writes, as the event type subscribers see.
//! One list, so `docs/events.md` (generated from it and compared by a test) and the code
//! cannot drift, and an action missing here is caught by `AuditAction::known` in debug builds.

/// One event type: its name, the resource its entries are about, and when it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventType {
    pub name: &'static str,
    /// The `resourceType` of its payload (`user`, `device`, …).
    pub resource: &'static str,
    pub summary: &'static str,
}

const fn event(name: &'static str, resource: &'static str, summary: &'static str) -> EventType {
    EventType {
        name,
        resource,
        summary,
    }
}

/// Audit actions announced under another event type: `(action, event type)`. An admin creating
/// an account and a sign-in provisioning one are both `user.created` (the actor tells them
/// apart).
pub const RENAMED_ACTIONS: &[(&str, &str)] = &[("admin.user_created", "user.created")];

/// The event sent by `POST /webhooks/{id}/test`; never written to the audit log.
pub const PING: &str = "ping";

/// Every event type, grouped by resource.
pub const EVENT_TYPES: &[EventType] = &[
    // Accounts and sign-in.
    event(
        "auth.registered",
        "user",
        "Someone created an account with e-mail and password.",
    ),
    event("auth.login_succeeded", "user", "A sign-in succeeded."),
    event(
        "auth.login_failed",
        "user",
        "A sign-in failed (a wrong password, or an unknown account).",
    ),
    event(
        "auth.account_locked",
        "user",
        "Too many failed sign-ins locked an account for a while.",
    ),
    event(
        "auth.reauthentication_failed",
        "user",
        "A signed-in user gave a wrong password to confirm a sensitive change.",
    ),
    event("auth.logout", "user", "A user signed out."),
    event(
        "auth.session_revoked",
        "session",
        "A user ended one of their sessions.",
    ),
    event(
        "auth.refresh_reuse_detected",
        "session",
        "A spent refresh token was presented again; the session was revoked.",
    ),
    event("auth.password_changed", "user", "A user changed their password."),
    event(
        "auth.password_reset_requested",
        "user",
        "A password-reset mail was asked for.",
    ),
    event(
        "auth.password_reset_capped",
        "user",
        "A password-reset mail was refused: too many asked for recently.",
    ),
    event(
        "auth.password_reset",
        "user",
        "A password was reset with a mailed link.",
    ),
    event(
        "auth.email_verified",
        "user",
        "A user confirmed their e-mail address.",
    ),
    event(
        "auth.invitation_accepted",
        "user",
        "An invited user set their password.",
    ),
    event(
        "auth.account_deleted",
        "user",
        "A user deleted their account (GDPR erasure).",
    ),
    event(
        "auth.provider_linked",
        "user",
        "A Google, Apple or OIDC identity was linked to an account.",
    ),
    event(
        "auth.provider_unlinked",
        "user",
        "A linked sign-in identity was removed.",
    ),
    event(
        "auth.token_created",
        "personal_token",
        "A personal access token was created.",
    ),
    event(
        "auth.token_revoked",
        "personal_token",
        "A personal access token was revoked.",
    ),
    event(
        "auth.mfa_enrolled",
        "user",
        "A user turned on TOTP two-factor authentication.",
    ),
    event(
        "auth.mfa_verified",
        "user",
        "A second factor was accepted at sign-in.",
    ),
    event(
        "auth.mfa_failed",
        "user",
        "A wrong second factor was given at sign-in.",
    ),
    event(
        "auth.mfa_disabled",
        "user",
        "A user turned two-factor authentication off.",
    ),
    event(
        "auth.mfa_recovery_code_used",
        "user",
        "A recovery code was spent at sign-in.",
    ),
    event(
        "auth.mfa_recovery_codes_regenerated",
        "user",
        "A user made new recovery codes.",
    ),
    event(
        "user.created",
        "user",
        "An account was created by an admin (actor `admin`) or provisioned at a federated sign-in (actor `system`).",
    ),
    event("user.profile_updated", "user", "A user changed their profile."),
    event(
        "user.quota_changed",
        "user",
        "An operator changed an account's plan or quota overrides.",
    ),
    // The admin API.
    event(
        "admin.user_updated",
        "user",
        "An admin changed an account (name, e-mail, status, …).",
    ),
    event("admin.user_locked", "user", "An admin locked an account."),
    event("admin.user_unlocked", "user", "An admin unlocked an account."),
    event("admin.user_deleted", "user", "An admin deleted an account."),
    event(
        "admin.email_verified",
        "user",
        "An admin marked an address as verified.",
    ),
    event(
        "admin.password_reset_sent",
        "user",
        "An admin sent a password-reset mail.",
    ),
    event(
        "admin.session_revoked",
        "session",
        "An admin ended one session of a user.",
    ),
    event(
        "admin.sessions_revoked",
        "user",
        "An admin ended every session of a user.",
    ),
    event(
        "admin.mfa_reset",
        "user",
        "An admin removed a user's second factor.",
    ),
    event(
        "admin.mfa_exemption_set",
        "user",
        "An admin exempted a user from the admin MFA requirement.",
    ),
    event(
        "admin.mfa_exemption_removed",
        "user",
        "An admin ended a user's MFA exemption.",
    ),
    event("admin.role_granted", "user", "A system role was granted."),
    event("admin.role_revoked", "user", "A system role was taken away."),
    event(
        "admin.roles_synced",
        "user",
        "A federated sign-in replaced a user's system roles with the identity provider's groups.",
    ),
    event(
        "admin.role_overrides_updated",
        "user",
        "An admin pinned or suppressed roles against identity-provider sync.",
    ),
    event(
        "admin.role_overrides_cleared",
        "user",
        "An admin removed a user's role overrides.",
    ),
    event("admin.role_created", "role", "A custom role was created."),
    event(
        "admin.role_updated",
        "role",
        "A custom role's permissions changed.",
    ),
    event("admin.role_deleted", "role", "A custom role was deleted."),
    event(
        "admin.bulk_action",
        "user",
        "An admin acted on many accounts at once (lock, unlock, delete, …).",
    ),
    event(
        "admin.group_ownership_transferred",
        "group",
        "An admin moved a group to a new owner.",
    ),
    event(
        "admin.access_denied",
        "admin_api",
        "A signed-in user was refused by the admin API for want of a permission.",
    ),
    event(
        "admin.ip_refused",
        "admin_api",
        "A request to the admin API came from an address outside the allowlist (at most one per address a minute).",
    ),
    event(
        "admin.allowlist_entry_created",
        "ip_allowlist",
        "An address range was added to the admin IP allowlist.",
    ),
    event(
        "admin.allowlist_entry_updated",
        "ip_allowlist",
        "An allowlist entry changed.",
    ),
    event(
        "admin.allowlist_entry_deleted",
        "ip_allowlist",
        "An allowlist entry was removed.",
    ),
    event(
        "admin.allowlist_settings_changed",
        "ip_allowlist",
        "The allowlist was switched on or off, or its mode changed.",
    ),
    event(
        "admin.allowlist_bypass_created",
        "ip_allowlist",
        "An emergency bypass token was issued.",
    ),
    event(
        "admin.allowlist_bypass_revoked",
        "ip_allowlist",
        "An emergency bypass token was revoked.",
    ),
    event(
        "admin.allowlist_bypassed",
        "ip_allowlist",
        "A bypass token let a request through the allowlist.",
    ),
    event("apikey.created", "api_key", "An app API key was created."),
    event(
        "apikey.rotated",
        "api_key",
        "An app API key got a new secret (the old one works for the overlap).",
    ),
    event("apikey.revoked", "api_key", "An app API key was revoked."),
    // Family and team groups.
    event("group.created", "group", "A group was created."),
    event(
        "group.updated",
        "group",
        "A group was renamed or its settings changed.",
    ),
    event("group.deleted", "group", "A group was deleted."),
    event(
        "group.invite_created",
        "group",
        "An invitation to a group was made.",
    ),
    event("group.invite_revoked", "group", "An invitation was withdrawn."),
    event(
        "group.member_joined",
        "group",
        "Someone joined a group with an invitation.",
    ),
    event("group.member_left", "group", "A member left a group."),
    event(
        "group.member_removed",
        "group",
        "A member was removed from a group.",
    ),
    event(
        "group.member_role_changed",
        "group",
        "A member's role in a group changed.",
    ),
    event(
        "group.member_erased",
        "group",
        "A member's account was erased and they left the group.",
    ),
    event(
        "group.ownership_transferred",
        "group",
        "A group's owner handed it to another member.",
    ),
    // Devices.
    event("device.registered", "device", "A user registered a device."),
    event(
        "device.enrolled",
        "device",
        "A device enrolled into an organization with a token.",
    ),
    event("device.imported", "device", "A device was created by an import."),
    event(
        "device.import_updated",
        "device",
        "An import updated an existing device.",
    ),
    event(
        "device.assigned",
        "device",
        "An organization admin moved a device to a fleet group or user.",
    ),
    event("device.linked", "device", "A device was linked to a group."),
    event(
        "device.unlinked",
        "device",
        "A device was unlinked from its group.",
    ),
    event(
        "device.suspended",
        "device",
        "An organization admin suspended a device.",
    ),
    event(
        "device.resumed",
        "device",
        "A suspended device was put back into service.",
    ),
    event(
        "device.retired",
        "device",
        "A device was retired (its credentials stop working).",
    ),
    event(
        "device.token_refreshed",
        "device",
        "A device renewed its device token.",
    ),
    event(
        "device.transfer_requested",
        "device",
        "An owner offered a device to another user.",
    ),
    event(
        "device.transfer_accepted",
        "device",
        "A device transfer was accepted.",
    ),
    event(
        "device.transfer_declined",
        "device",
        "A device transfer was declined.",
    ),
    event(
        "device.transfer_cancelled",
        "device",
        "A device transfer was withdrawn or expired.",
    ),
    event("device.transferred", "device", "A device changed owner."),
    event(
        "device.wipe_requested",
        "device",
        "An organization admin queued a wipe.",
    ),
    event(
        "device.wiped",
        "device_command",
        "A device acknowledged a wipe command.",
    ),
    event(
        "device.command_delivered",
        "device_command",
        "A device picked up a queued command.",
    ),
    event(
        "device.command_acknowledged",
        "device_command",
        "A device acknowledged a command other than a wipe.",
    ),
    // Remote settings and locks.
    event("settings.updated", "device", "A device's settings were changed."),
    event(
        "settings.locks_changed",
        "device",
        "Settings were locked or unlocked on a device.",
    ),
    event("settings.synced", "device", "A device synced its settings."),
    event(
        "settings.applied",
        "device",
        "A device reported its current settings version applied without failures.",
    ),
    event(
        "settings.non_compliant",
        "device",
        "A device reported settings it could not apply, or a version behind its current one.",
    ),
    event("settings.sync_requested", "device", "A sync push was asked for."),
    event(
        "settings.unlock_requested",
        "device",
        "A device user asked for a locked setting to be lifted.",
    ),
    event(
        "settings.unlock_approved",
        "device",
        "An unlock request was approved.",
    ),
    event(
        "settings.unlock_denied",
        "device",
        "An unlock request was denied.",
    ),
    event(
        "settings.lock_released",
        "device",
        "A lock was lifted for a while after an approval.",
    ),
    event(
        "settings.lock_returned",
        "device",
        "A temporarily lifted lock came back into force.",
    ),
    event(
        "settings.definition_created",
        "setting_definition",
        "A setting was added to the catalog.",
    ),
    event(
        "settings.definition_updated",
        "setting_definition",
        "A catalog setting changed.",
    ),
    event(
        "settings.definition_deleted",
        "setting_definition",
        "A setting was removed from the catalog.",
    ),
    // Organizations and fleets.
    event(
        "organization.created",
        "organization",
        "An organization was created.",
    ),
    event(
        "organization.updated",
        "organization",
        "An organization was renamed or its settings changed.",
    ),
    event(
        "organization.deleted",
        "organization",
        "An organization was deleted (its devices are released).",
    ),
    event(
        "organization.quota_changed",
        "organization",
        "An operator changed an organization's plan or quota overrides.",
    ),
    event(
        "organization.quota_threshold",
        "organization",
        "A creation brought an organization to 80 % or 100 % of a quota (`key`, `limit`, `used`, `percent`).",
    ),
    event(
        "organization.user_added",
        "organization",
        "A user was added to an organization.",
    ),
    event(
        "organization.user_removed",
        "organization",
        "A user was removed from an organization.",
    ),
    event(
        "organization.user_role_changed",
        "organization",
        "A user's role in an organization changed.",
    ),
    event(
        "enrollment_token.created",
        "enrollment_token",
        "An enrollment token was created.",
    ),
    event(
        "enrollment_token.revoked",
        "enrollment_token",
        "An enrollment token was revoked.",
    ),
    event(
        "enrollment_token.qr_rendered",
        "enrollment_token",
        "An enrollment token's QR code was rendered.",
    ),
    event("fleet_group.created", "fleet_group", "A fleet group was created."),
    event("policy.created", "device_policy", "A policy was created."),
    event("policy.updated", "device_policy", "A policy changed."),
    event("policy.deleted", "device_policy", "A policy was deleted."),
    event(
        "policy.applied",
        "device_policy",
        "A policy was applied to devices, a fleet group or the organization.",
    ),
    event("policy.unapplied", "device_policy", "A policy was taken off."),
    // Configuration backup and restore.
    event(
        "config.exported",
        "configuration",
        "The instance's configuration was exported (which categories, sealed or not, its checksum).",
    ),
    event(
        "config.imported",
        "configuration",
        "A configuration file was imported (its counts and every item it created or updated).",
    ),
    event(
        "organization.default_repaired",
        "organization",
        "The default organization was repaired: how many accounts it gained (and with which role), how many devices were attached to it, whether it was created again.",
    ),
    // Row-level security.
    event(
        "database.rls_enabled",
        "database",
        "Row-level security was turned on (the tables it changed), by an operator or at start-up.",
    ),
    event(
        "database.rls_disabled",
        "database",
        "Row-level security was turned off (the tables it changed).",
    ),
    // Scheduled reports.
    event(
        "report.schedule_created",
        "report_schedule",
        "An operator created a report schedule (its fields and recipients).",
    ),
    event(
        "report.schedule_updated",
        "report_schedule",
        "An operator changed a report schedule; its runs act for them from now on.",
    ),
    event(
        "report.schedule_deleted",
        "report_schedule",
        "An operator deleted a report schedule with its recipients and runs.",
    ),
    event(
        "report.test_sent",
        "report_schedule",
        "An operator sent a report schedule's test mail (to whom).",
    ),
    event(
        "report.sent",
        "report_schedule",
        "A scheduled run mailed its report (the slot and to whom).",
    ),
    event(
        "report.unsubscribed",
        "report_schedule",
        "A recipient left a report schedule through the link in its mail.",
    ),
    // Background jobs.
    event("job.submitted", "job", "A background job was submitted."),
    event("job.cancelled", "job", "A background job was cancelled."),
    event(
        "job.result_downloaded",
        "job",
        "A job's result file was downloaded.",
    ),
    // Webhooks and notifications.
    event(
        "webhook.created",
        "webhook",
        "A webhook subscription was created.",
    ),
    event(
        "webhook.updated",
        "webhook",
        "A subscription changed (URL, events, enabled, …).",
    ),
    event(
        "webhook.secret_rotated",
        "webhook",
        "A subscription's signing secret was replaced.",
    ),
    event("webhook.deleted", "webhook", "A subscription was deleted."),
    event(
        "webhook.disabled",
        "webhook",
        "Steward turned a subscription off: 50 failed deliveries in a row, or its creator no longer manages it.",
    ),
    event(
        "webhook.redelivered",
        "webhook",
        "An admin asked for a delivery to be sent again.",
    ),
    event(
        "notification.preferences_updated",
        "user",
        "An operator changed their notification preferences.",
    ),
];

/// The entry of `name`, if it is an event type.
pub fn event_type(name: &str) -> Option<&'static EventType> {
    EVENT_TYPES.iter().find(|event| event.name == name)
}

/// Whether `action` is an audit action the catalog announces (itself or renamed).
pub fn is_cataloged_action(action: &str) -> bool {
    RENAMED_ACTIONS.iter().any(|(from, _)| *from == action)
        || (event_type(action).is_some() && action != "device.wiped")
}

/// The event type an audit entry is announced as: its action, unless renamed (an acknowledged
/// wipe is `device.wiped`).
pub fn announced_as<'a>(action: &'a str, after: Option<&serde_json::Value>) -> &'a str {
    if let Some((_, renamed)) = RENAMED_ACTIONS.iter().find(|(from, _)| *from == action) {
        return renamed;
    }
    if action == "device.command_acknowledged"
        && after
            .and_then(|after| after.get("command"))
            .and_then(serde_json::Value::as_str)
            == Some("wipe")
    {
        return "device.wiped";
    }
    action
}

/// The catalog as the Markdown table in `docs/events.md`.
pub fn catalog_markdown() -> String {
    let mut text = String::from("| Event type | `resourceType` | When |\n|---|---|---|\n");
    for event in EVENT_TYPES {
        text.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            event.name, event.resource, event.summary
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditAction;

    #[test]
    fn every_name_is_a_valid_unique_action() {
        let mut seen = std::collections::BTreeSet::new();
        for event in EVENT_TYPES {
            assert!(AuditAction::parse(event.name).is_ok(), "{}", event.name);
            assert!(seen.insert(event.name), "{} listed twice", event.name);
            assert!(!event.summary.contains('|'), "{}", event.name);
        }
        for (from, to) in RENAMED_ACTIONS {
            assert!(event_type(to).is_some() && event_type(from).is_none());
        }
    }

    /// The text between `<!-- name:start -->` and `<!-- name:end -->` in docs/events.md.
    fn documented(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let start = format!("<!-- {name}:start -->\n");
        let from = text.find(&start).unwrap() + start.len();
        let to = text.find(&format!("<!-- {name}:end -->")).unwrap();
        text[from..to].to_owned()
    }

    #[test]
    fn the_documentation_lists_exactly_the_catalog_and_the_rules() {
        assert_eq!(
            documented("catalog"),
            catalog_markdown(),
            "regenerate the table in docs/events.md"
        );
        assert_eq!(
            documented("rules"),
            crate::notifications::rules_markdown(),
            "regenerate the rules table in docs/events.md"
        );
    }

    #[test]
    fn renamed_actions_are_announced_under_their_event_type() {
        assert_eq!(announced_as("admin.user_created", None), "user.created");
        assert_eq!(announced_as("auth.login_failed", None), "auth.login_failed");
        let wipe = serde_json::json!({"command": "wipe"});
        assert_eq!(
            announced_as("device.command_acknowledged", Some(&wipe)),
            "device.wiped"
        );
        assert!(is_cataloged_action("admin.user_created"));
        assert!(!is_cataloged_action("device.wiped"));
        assert!(!is_cataloged_action("made.up"));
    }
}
