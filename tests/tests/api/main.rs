//! All black-box tests compile into this one binary (one link instead of one per file).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audit;
mod boundaries;
mod health;
mod openapi;
mod readiness;
mod schema;
mod shell;
mod startup;
