//! Logging to stderr through `tracing`. `-v`/`-vv`/`-vvv` raise envoke's own level (info, debug,
//! trace); dependencies stay at `warn`. RUST_LOG, when set, replaces all of that: a list of
//! `target=level` directives and a default level (`debug`, `envoke=trace,hyper=debug`). It is
//! matched by target prefix, without the regular expressions of `EnvFilter`, which would be most
//! of the logging code in the binary.
//!
//! envoke never logs a value: log lines name variables, references, versions and addresses.
//!
//! Dependencies are another matter: at DEBUG and TRACE the AWS SDK prints signed requests
//! (`aws_sigv4`'s canonical request holds the session token) and whole responses, and the HTTP
//! stacks print headers. So whatever RUST_LOG says, no target outside envoke logs below INFO, and
//! `aws_sigv4` logs nothing ([`dependency_cap`]).

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::filter::{Targets, filter_fn};
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
        .with(layer.with_filter(filter).with_filter(filter_fn(|metadata| {
            dependency_cap(metadata.target(), *metadata.level())
        })))
        .try_init();
    if let Some((error, directives)) = unusable {
        tracing::warn!("ignoring RUST_LOG={directives:?}: {error} (use `target=level,...`)");
    }
}

/// Whether a target may log at `level`, whatever the filter says: envoke's own targets always;
/// `aws_sigv4` never; any other dependency at INFO and above only.
fn dependency_cap(target: &str, level: Level) -> bool {
    if target == "envoke" || target.starts_with("envoke::") {
        return true;
    }
    !target.starts_with("aws_sigv4") && level <= Level::INFO
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
    // region configured" itself.
    format!("{base},aws_config=error,envoke={level}")
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
        let quiet = default_filter(0, true);
        assert!(!quiet.would_enable("envoke", &Level::WARN));
        assert!(quiet.would_enable("envoke", &Level::ERROR));
    }

    #[test]
    fn dependencies_never_log_below_info_and_sigv4_never() {
        assert!(dependency_cap("envoke::watch", Level::TRACE));
        assert!(dependency_cap("envoke", Level::DEBUG));
        assert!(!dependency_cap("envoker", Level::DEBUG));
        assert!(!dependency_cap(
            "aws_sigv4::http_request::sign",
            Level::ERROR
        ));
        assert!(!dependency_cap(
            "aws_smithy_runtime::client::orchestrator",
            Level::DEBUG
        ));
        assert!(!dependency_cap("hyper_util::client", Level::TRACE));
        assert!(dependency_cap("hyper_util::client", Level::WARN));
    }
}
