//! HTTP handlers by topic. Each is thin: extract, call a service, render.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod device_enrollment;
pub mod devices;
pub mod enrollment;
pub mod federation;
pub mod fleet;
pub mod groups;
pub mod jwks;
pub mod organizations;
pub mod policies;
pub mod setting_definitions;
pub mod settings;
pub mod users;
