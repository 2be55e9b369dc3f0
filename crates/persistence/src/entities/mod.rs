//! SeaORM entities, one module per table. Later features add theirs as they need them.

pub mod audit_logs;
pub mod organizations;
