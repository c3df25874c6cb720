//! The boxoffice server as a library: configuration, backend selection, startup and
//! shutdown. `main.rs` is a thin shim over this, and the integration tests drive the
//! same `Application` on port 0.

pub mod backends;
pub mod cli;
pub mod config;
pub mod demo;
pub mod secrets;
pub mod serve;
pub mod startup;
pub mod telemetry;
pub mod tls;

pub use config::Config;
pub use startup::{Application, EngineWrap, Running, StartupReport};
