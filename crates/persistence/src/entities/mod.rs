//! SeaORM entities, one module per table. Later features add theirs as they need them.

pub mod api_keys;
pub mod audit_chain;
pub mod audit_logs;
pub mod device_policies;
pub mod device_settings;
pub mod device_transfers;
pub mod devices;
pub mod email_tokens;
pub mod group_invites;
pub mod group_memberships;
pub mod groups;
pub mod login_throttles;
pub mod oauth_accounts;
pub mod oidc_nonces;
pub mod org_users;
pub mod organizations;
pub mod outbox_emails;
pub mod password_history;
pub mod push_notifications;
pub mod refresh_tokens;
pub mod setting_definitions;
pub mod unlock_requests;
pub mod user_role_overrides;
pub mod user_sessions;
pub mod user_system_roles;
pub mod users;
