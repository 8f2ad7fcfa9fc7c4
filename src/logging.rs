//! Logging: `tracing` lines, pretty or JSON, filtered by `RUST_LOG`
//! (default `info`). Every actor logs inside a span carrying `node` and
//! `actor`, and request handling carries `req`, so one grep follows a request.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal; files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A log line that cannot be written (stderr on a full disk) is lost,
    // not reported: the report is an `eprintln!` to the same stderr,
    // which panics, and took down the thread that logged (the storage
    // writer, when the data dir and the log shared a full disk).
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
        LogFormat::Pretty => builder.with_target(false).try_init(),
    };
}
