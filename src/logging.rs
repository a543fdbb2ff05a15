//! Logging to stderr through `tracing`. `-v`/`-vv`/`-vvv` raise envoke's own level (info, debug,
//! trace); dependencies stay at `warn`. RUST_LOG, when set, replaces all of that.
//!
//! envoke never logs a value: log lines name variables, references, versions and addresses.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber. Call once, before anything logs.
pub fn init(verbose: u8, quiet: bool) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::new(directives),
        _ => {
            let level = match (quiet, verbose) {
                (true, _) => "error",
                (false, 0) => "warn",
                (false, 1) => "info",
                (false, 2) => "debug",
                (false, _) => "trace",
            };
            // rustify (under vaultrs) logs every non-2xx answer at ERROR through
            // `#[instrument(err)]`; envoke reports those itself, per variable.
            let base = if quiet { "error" } else { "warn" };
            // aws-config warns with whole debug dumps when IMDS does not answer; envoke says
            // "no AWS region configured" itself.
            let base = format!("{base},aws_config=error");
            EnvFilter::new(format!("{base},rustify=off,vaultrs=off,envoke={level}"))
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .try_init();
}
