//! Logging to stderr through `tracing`. `-v`/`-vv`/`-vvv` raise envoke's own level (info, debug,
//! trace); dependencies stay at `warn`. RUST_LOG, when set, replaces all of that: a list of
//! `target=level` directives and a default level (`debug`, `envoke=trace,hyper=debug`). It is
//! matched by target prefix, without the regular expressions of `EnvFilter`, which would be most
//! of the logging code in the binary.
//!
//! envoke never logs a value: log lines name variables, references, versions and addresses.

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// Installs the subscriber. Call once, before anything logs.
pub fn init(verbose: u8, quiet: bool) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|directives| !directives.trim().is_empty())
        .map(|directives| (directives.parse::<Targets>(), directives));
    let (filter, unusable) = match from_env {
        Some((Ok(filter), _)) => (filter, None),
        Some((Err(error), directives)) => {
            (default_filter(verbose, quiet), Some((error, directives)))
        }
        None => (default_filter(verbose, quiet), None),
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time();
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
    if let Some((error, directives)) = unusable {
        tracing::warn!("ignoring RUST_LOG={directives:?}: {error} (use `target=level,...`)");
    }
}

fn default_filter(verbose: u8, quiet: bool) -> Targets {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let base = if quiet { "error" } else { "warn" };
    // aws-config warns with whole debug dumps when IMDS does not answer; envoke says "no AWS
    // region configured" itself. rustify (under vaultrs) logs every non-2xx answer at ERROR
    // through `#[instrument(err)]`; envoke reports those itself, per variable.
    format!("{base},aws_config=error,rustify=off,vaultrs=off,envoke={level}")
        .parse()
        .expect("the built-in log filter parses")
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn the_default_filter_keeps_dependencies_quiet_and_follows_the_verbosity() {
        let filter = default_filter(2, false);
        assert!(filter.would_enable("envoke::watch", &Level::DEBUG));
        assert!(!filter.would_enable("envoke::watch", &Level::TRACE));
        assert!(filter.would_enable("hyper_util::client", &Level::WARN));
        assert!(!filter.would_enable("hyper_util::client", &Level::INFO));
        assert!(!filter.would_enable("aws_config::imds::region", &Level::WARN));
        assert!(!filter.would_enable("rustify::client", &Level::ERROR));
        let quiet = default_filter(0, true);
        assert!(!quiet.would_enable("envoke", &Level::WARN));
        assert!(quiet.would_enable("envoke", &Level::ERROR));
    }
}
