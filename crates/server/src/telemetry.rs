//! Logging: a `tracing` subscriber from the config's filter and format, installed once
//! by `main`. Tests install nothing unless `TEST_LOG` is set, so they stay silent.
//! Colour only when stderr is a terminal (and `NO_COLOR` is unset): escape codes in
//! a log file or a pipe are noise to whoever reads or greps it.

use std::io::IsTerminal;
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{Config, LogFormat};

pub fn init(c: &Config) {
    let filter = EnvFilter::try_new(&c.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour);
    let _ = match c.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
