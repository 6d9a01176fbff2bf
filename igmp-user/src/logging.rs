//! Log lines through `tracing`, on stderr, as text or JSON.
//!
//! Records made with the `log` crate pass through the same subscriber, and
//! with them the XDP program's own lines, which aya-log hands to `log`.

use std::io::IsTerminal as _;

use anyhow::{anyhow, Result};
use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};

/// What is logged when neither `--log-level` nor `RUST_LOG` says.
const DEFAULT_FILTER: &str = "info";

/// Installs the process-wide subscriber (and the `log` bridge) once.
pub fn init(args: &LogArgs) -> Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(args.log_level.as_deref())?)
        .with_writer(std::io::stderr);
    let installed = match args.log_format {
        // Colours only for a person at a terminal, never in a file or the journal.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    installed.map_err(|error| anyhow!("installing the logger: {error}"))
}

/// `--log-level` if given, else `RUST_LOG` if set, else [`DEFAULT_FILTER`].
fn filter(log_level: Option<&str>) -> Result<EnvFilter> {
    if let Some(directives) = log_level {
        return parse(directives, "--log-level ");
    }
    match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(directives) => parse(&directives, "RUST_LOG="),
        Err(_) => Ok(EnvFilter::new(DEFAULT_FILTER)),
    }
}

/// The filter `directives` spell, or one line naming where they came from.
fn parse(directives: &str, origin: &str) -> Result<EnvFilter> {
    // The parse error repeats its cause in its source: one Display is the whole story.
    EnvFilter::try_new(directives)
        .map_err(|error| anyhow!("{origin}{directives:?} is not a level or filter: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_or_a_filter_is_accepted() {
        for directives in ["warn", "info,igmp_user=debug", "igmp_user::daemon=trace"] {
            assert!(filter(Some(directives)).is_ok(), "{directives}");
        }
    }

    #[test]
    fn a_bad_level_is_named() {
        let error = filter(Some("igmp_user=loud")).unwrap_err();
        assert!(
            format!("{error:#}").contains("--log-level \"igmp_user=loud\""),
            "{error:#}"
        );
    }
}
