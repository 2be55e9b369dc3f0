//! Storage for Steward: SeaORM entities, the connection pool, migrations and the
//! implementations of the domain's repository traits.
//!
//! Works the same on SQLite (the embedded default) and PostgreSQL; the backend is chosen by the
//! database URL alone.

mod accounts;
mod admin_activity;
mod audit;
mod audit_log;
mod audit_rollup;
mod config_backup;
mod dashboard;
mod database;
mod device_events;
mod devices;
pub mod entities;
mod error;
mod events;
mod federation;
mod fleet;
mod group_admin;
mod group_commit;
mod groups;
mod health;
mod ip_allowlist;
mod jobs;
mod lock_reach;
mod maintenance;
mod mfa;
mod notifications;
mod organizations;
mod personal_tokens;
mod policies;
mod queue;
mod reports;
mod roles;
mod settings;
pub mod shared_limits;
mod sql;
pub mod tenancy;
mod tenancy_store;
mod user_quotas;
mod version_reads;

pub use database::{Backend, Database, DatabaseOptions, MigrationState, PoolStats};
pub use device_events::EventSignal;
pub use error::PersistenceError;
pub use steward_migration::TABLES;
