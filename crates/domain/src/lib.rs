//! Steward's rules, free of IO.
//!
//! This crate decides; it never fetches or stores. Callers hand it data and get decisions back,
//! which is why it can be embedded by other services without the HTTP shell or a database. The
//! repository traits the rules need are defined here and implemented in `steward-persistence`.

pub mod account_import;
pub mod accounts;
pub mod admin_activity;
pub mod audit;
pub mod audit_log;
pub mod config_backup;
pub mod dashboard;
pub mod device_events;
pub mod devices;
pub mod events;
pub mod federation;
pub mod fleet;
pub mod group_admin;
pub mod group_store;
pub mod groups;
pub mod health;
pub mod identity;
pub mod ip_allowlist;
pub mod jobs;
pub mod limits;
pub mod maintenance;
pub mod mfa;
pub mod notifications;
pub mod organizations;
pub mod pagination;
pub mod policies;
pub mod quotas;
pub mod rbac;
pub mod reports;
pub mod repository;
pub mod roles;
pub mod rules;
pub mod session;
pub mod settings;
pub mod tenancy;

pub use audit::{Actor, ActorKind, AuditAction, AuditEntry, AuditRecorder, RequestOrigin, SessionSlot};
pub use pagination::{PageRequest, PaginationError};
pub use repository::RepositoryError;
pub use rules::{RuleError, RuleStoreError};
