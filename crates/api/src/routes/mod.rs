//! HTTP handlers by topic. Each is thin: extract, call a service, render.

pub mod admin;
pub mod admin_user_roles;
pub mod admin_user_search;
pub mod admin_users;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod auth_mail;
pub mod device_enrollment;
pub mod devices;
pub mod enrollment_tokens;
pub mod federation;
pub mod fleet_devices;
pub mod fleet_groups;
pub mod groups;
pub mod imports;
pub mod jwks;
pub mod organizations;
pub mod personal_tokens;
pub mod policies;
pub mod policy_application;
pub mod roles;
pub mod setting_definitions;
pub mod settings;
pub mod unlock_requests;
pub mod users;
