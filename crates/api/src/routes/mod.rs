//! HTTP handlers by topic. Each is thin: extract, call a service, render.

pub mod admin;
pub mod auth;
pub mod federation;
pub mod jwks;
