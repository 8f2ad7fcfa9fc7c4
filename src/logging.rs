//! Logging: `tracing` lines, pretty or JSON, filtered by `RUST_LOG`
//! (default `info`). Every actor logs inside a span carrying `node` and
//! `actor`, and request handling carries `req`, so one grep follows a request.
//!
//! The filter is a static one (`Targets`: levels per target, decided once
//! per call site) whenever `RUST_LOG` has only such directives, which is
//! the usual case. `EnvFilter` is kept for what needs it (span and field
//! directives, `target[span{field=value}]=level`): it is asked on every
//! enter and exit of every span, and request futures enter their span on
//! every poll, which cost a get about 3% of the node's CPU in a profile.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer, Registry};

use crate::config::LogFormat;

/// `RUST_LOG` when it is not set.
const LOG_FILTER_DEFAULT: &str = "info";

/// A boxed filter layer over the registry.
type FilterLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The filter for `spec` (a `RUST_LOG` value): static when it can be.
fn filter(spec: &str) -> FilterLayer {
    if !spec.contains('[') {
        if let Ok(targets) = spec.parse::<Targets>() {
            return Box::new(targets);
        }
    }
    let env = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new(LOG_FILTER_DEFAULT));
    Box::new(env)
}

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(format: LogFormat) {
    let spec = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| LOG_FILTER_DEFAULT.into());
    // Colour only for a person at a terminal; files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A log line that cannot be written (stderr on a full disk) is lost,
    // not reported: the report is an `eprintln!` to the same stderr,
    // which panics, and took down the thread that logged (the storage
    // writer, when the data dir and the log shared a full disk).
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .with_ansi(ansi);
    let registry = tracing_subscriber::registry().with(filter(&spec));
    let _ = match format {
        LogFormat::Json => registry
            .with(layer.json().with_current_span(true).with_span_list(true))
            .try_init(),
        LogFormat::Pretty => registry.with(layer.with_target(false)).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;

    use super::filter;

    /// What `probe` (one `tracing::enabled!` call site) answers under the
    /// filter of `spec`.
    fn under(spec: &str, probe: impl FnOnce() -> bool) -> bool {
        let subscriber = tracing_subscriber::registry().with(filter(spec));
        tracing::subscriber::with_default(subscriber, probe)
    }

    #[test]
    fn rust_log_directives_filter_as_before() {
        assert!(under(
            "info",
            || tracing::enabled!(target: "ringkv::node", Level::INFO)
        ));
        assert!(!under(
            "info",
            || tracing::enabled!(target: "ringkv::node", Level::DEBUG)
        ));
        assert!(!under(
            "warn",
            || tracing::enabled!(target: "ringkv::node", Level::INFO)
        ));
        let storage_debug = "info,ringkv_actors::storage=debug";
        assert!(under(storage_debug, || tracing::enabled!(
            target: "ringkv_actors::storage::writer",
            Level::DEBUG
        )));
        assert!(!under(storage_debug, || tracing::enabled!(
            target: "ringkv::node",
            Level::DEBUG
        )));
        assert!(!under("ringkv_actors=debug", || tracing::enabled!(
            target: "ringkv::node",
            Level::INFO
        )));
        // Span directives still work (through EnvFilter); outside that
        // span the rest of the directives apply.
        assert!(under("info,[read{req}]=debug", || tracing::enabled!(
            target: "ringkv::node",
            Level::INFO
        )));
        assert!(!under("warn,[read{req}]=debug", || tracing::enabled!(
            target: "ringkv::node",
            Level::INFO
        )));
        // Not a filter at all: the default, `info`.
        assert!(under(
            "=!=",
            || tracing::enabled!(target: "ringkv::node", Level::INFO)
        ));
        assert!(!under(
            "=!=",
            || tracing::enabled!(target: "ringkv::node", Level::DEBUG)
        ));
    }
}
