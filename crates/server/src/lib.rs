//! The Steward server: configuration, wiring and the CLI's commands. `main` and the black-box
//! tests both start the server through [`Application::build`].

pub mod app;
pub mod audit_sealer;
pub mod cli;
pub mod config;
pub mod keys;
pub mod mail;
pub mod memory;
pub mod push;
pub mod telemetry;

pub use app::{Application, StartupError};
pub use config::{Config, ConfigError, LogFormat};
pub use steward_app::clock::Clock;

/// The `steward` command: parses the command line and runs it on a multi-threaded runtime;
/// exit code 2 on an error. It lives in the library rather than in `main.rs` because the async
/// code it drives is compiled in the crate that polls it: here, once, instead of a second
/// time in the binary (about 45 s of a cold release build on two cores).
pub fn main() -> std::process::ExitCode {
    use clap::Parser;
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(cli::Cli::parse())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::from(error.exit_code())
        }
    }
}
