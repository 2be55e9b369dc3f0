//! Steward's use cases: sign-in and accounts, groups, devices, remote settings, organization
//! fleets. Each service decides through the pure rules of `steward-domain` and stores through
//! its store traits, so any implementation of those traits — `steward-persistence` in the
//! server, another in an embedding service — runs them. Nothing here knows HTTP: a refusal is
//! an [`AppError`], which the shell maps to its own errors once.

pub mod admin_activity;
pub mod admin_bulk;
pub mod admin_user_import;
pub mod admin_users;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod clock;
pub mod config_backup;
pub mod dashboard;
pub mod device_events;
pub mod devices;
pub mod error;
pub mod events;
pub mod features;
pub mod fleet;
pub mod groups;
pub mod health;
pub mod ip_allowlist;
pub mod jobs;
pub mod limits;
pub mod mail;
pub mod maintenance;
pub mod notifications;
pub mod organizations;
pub mod policies;
pub mod principal;
pub mod quotas;
pub mod reports;
pub mod roles;
pub mod settings;
mod steward;
pub mod tenancy;
pub mod user_export;
pub mod webhooks;

pub use error::{AppError, ErrorKind, FieldError};
pub use principal::{Credential, Principal};
pub use steward::{Steward, Store};
