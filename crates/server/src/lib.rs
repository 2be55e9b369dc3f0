//! The Steward server: configuration, wiring and the CLI's commands. `main` and the black-box
//! tests both start the server through [`Application::build`].

pub mod app;
pub mod audit_sealer;
pub mod cli;
pub mod config;
pub mod keys;
pub mod mail;
pub mod push;
pub mod telemetry;

pub use app::{Application, StartupError};
pub use config::{Config, ConfigError, LogFormat};
