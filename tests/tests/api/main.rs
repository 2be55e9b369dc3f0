//! All black-box tests compile into this one binary (one link instead of one per file).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod audit;
mod audit_query;
mod auth_accounts;
mod auth_gdpr;
mod auth_lockout;
mod auth_mail;
mod auth_refresh;
mod boundaries;
mod cors;
mod devices;
mod federation;
mod fleet;
mod groups;
mod health;
mod openapi;
mod organizations;
mod personal_tokens;
mod readiness;
mod schema;
mod settings;
mod shell;
mod startup;
