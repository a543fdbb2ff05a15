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
//!
//! # Formats
//! `--log-format text` (the default) writes one line per event, with an RFC 3339 timestamp when
//! stderr is not a terminal (a container's log, a file, a pipe to a shipper). `--log-format json`
//! writes one JSON object per line: `timestamp`, `level`, `message`, the event's own fields at the
//! top level (flattened, so a shipper indexes `variable` rather than `fields.variable`) and
//! `target`. serde_json escapes every control character, so an event is always one line. Both
//! take their timestamps from tracing-subscriber's own RFC 3339 formatter (UTC, microseconds).
//!
//! # Audit
//! [`AUDIT`] is the target of the events that say who got which secret version, when, as whom:
//! resolutions, lease renewals and revocations, Vault logins (docs/logging.md lists them). It is
//! at INFO by default, so shown without `-v`, wherever the logs are kept: a pipe, a file, a
//! container's log, or any `--log-format json`; `-q` silences it, like everything but errors.
//! [`CHANGE`], the watcher's account of why it restarts, rechecks or waits, is shown the same way.
//!
//! # A person at a terminal
//! Text logs on a terminal are read by the person who started envoke, not kept: there the audit
//! events need `-v`, and [`SUMMARY`] says in one line what they would have said at length
//! ("started node (pid 4242) with 7 secrets: 3 from AWS us-east-1, 4 from Vault"). Anywhere
//! else the summary is off (the audit events say it all) unless `-v` shows envoke's INFO lines.

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::filter::{Targets, filter_fn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::prelude::*;

/// The target of audit events: `tracing::info!(target: AUDIT, ...)` (a literal there:
/// `"envoke::audit"`, as tracing's macros want).
pub const AUDIT: &str = "envoke::audit";

/// The target of the watcher's account of what it does: which reference changed, from which
/// version to which and why it was checked, a recheck, the splay chosen, a restart. At INFO by
/// default, like [`AUDIT`]: a restart is never silent.
pub const CHANGE: &str = "envoke::change";

/// The target of the one line that sums up a launch for a person at a terminal (see the module
/// doc): at INFO there by default, where the audit events are left to `-v`.
pub const SUMMARY: &str = "envoke::summary";

/// How log events are written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people; timestamped when stderr is not a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the subscriber. Call once, before anything logs.
pub fn init(verbose: u8, quiet: bool, format: LogFormat) {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|directives| !directives.trim().is_empty())
        .map(|directives| (directives.parse::<Targets>(), directives));
    let terminal = std::io::stderr().is_terminal();
    let reader = if terminal && format == LogFormat::Text {
        Reader::Person
    } else {
        Reader::Record
    };
    let (filter, unusable) = match from_env {
        Some((Ok(filter), _)) => (filter, None),
        Some((Err(error), directives)) => (
            default_filter(verbose, quiet, reader),
            Some((error, directives)),
        ),
        None => (default_filter(verbose, quiet, reader), None),
    };
    let text = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(terminal)
        .with_target(false);
    let layer = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed(),
        // A terminal shows lines as they happen; anything else keeps them for later.
        LogFormat::Text if terminal => text.without_time().boxed(),
        LogFormat::Text => text.boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter).with_filter(filter_fn(|metadata| {
            dependency_cap(metadata.target(), *metadata.level())
        })))
        .try_init();
    if let Some((error, directives)) = unusable {
        tracing::warn!("ignoring RUST_LOG={directives:?}: {error} (use `target=level,...`)");
    }
}

/// Prints envoke's final error, whatever the filter says: as text (`envoke: error: ...`), or as
/// one JSON object like the events' under `--log-format json`, so that every line of stderr
/// parses.
pub fn print_error(format: LogFormat, error: &dyn std::fmt::Display) {
    match format {
        LogFormat::Text => eprintln!("envoke: error: {error}"),
        LogFormat::Json => eprintln!("{}", error_json(&error.to_string())),
    }
}

fn error_json(message: &str) -> String {
    let mut timestamp = String::new();
    let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
    // Written out by hand for the events' key order; serde_json quotes and escapes the strings.
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    format!(
        r#"{{"timestamp":{},"level":"ERROR","message":{},"target":"envoke"}}"#,
        quoted(&timestamp),
        quoted(message)
    )
}

/// Whether a target may log at `level`, whatever the filter says: envoke's own targets always;
/// `aws_sigv4` never; any other dependency at INFO and above only.
fn dependency_cap(target: &str, level: Level) -> bool {
    if target == "envoke" || target.starts_with("envoke::") {
        return true;
    }
    !target.starts_with("aws_sigv4") && level <= Level::INFO
}

/// Who reads the logs, which decides what the default filter shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// Text on a terminal: the summary line, the audit events only with `-v`.
    Person,
    /// Anything kept (a pipe, a file, JSON): the audit events, no summary line unless `-v`.
    Record,
}

fn default_filter(verbose: u8, quiet: bool, reader: Reader) -> Targets {
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
    // Audit events at INFO even without -v (at a terminal, the summary instead); -q keeps
    // errors only.
    let shown = if quiet { "error" } else { "info" };
    let (audit, summary) = match reader {
        Reader::Person if verbose == 0 => ("warn", shown),
        Reader::Person => (shown, shown),
        Reader::Record => (shown, level),
    };
    format!(
        "{base},aws_config=error,envoke={level},{AUDIT}={audit},{CHANGE}={shown},\
         {SUMMARY}={summary}"
    )
    .parse()
    .expect("the built-in log filter parses")
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn the_default_filter_keeps_dependencies_quiet_and_follows_the_verbosity() {
        let filter = default_filter(2, false, Reader::Record);
        assert!(filter.would_enable("envoke::watch", &Level::DEBUG));
        assert!(!filter.would_enable("envoke::watch", &Level::TRACE));
        assert!(filter.would_enable("hyper_util::client", &Level::WARN));
        assert!(!filter.would_enable("hyper_util::client", &Level::INFO));
        assert!(!filter.would_enable("aws_config::imds::region", &Level::WARN));
        let quiet = default_filter(0, true, Reader::Record);
        assert!(!quiet.would_enable("envoke", &Level::WARN));
        assert!(quiet.would_enable("envoke", &Level::ERROR));
    }

    #[test]
    fn audit_events_show_by_default_and_not_with_quiet() {
        let filter = |verbose, quiet| default_filter(verbose, quiet, Reader::Record);
        assert!(filter(0, false).would_enable(AUDIT, &Level::INFO));
        assert!(!filter(0, false).would_enable("envoke::watch", &Level::INFO));
        assert!(!filter(0, false).would_enable(AUDIT, &Level::DEBUG));
        assert!(!filter(0, true).would_enable(AUDIT, &Level::INFO));
        assert!(!filter(0, false).would_enable(SUMMARY, &Level::INFO));
        assert!(filter(1, false).would_enable(SUMMARY, &Level::INFO));
    }

    #[test]
    fn a_person_gets_the_summary_and_the_audit_events_only_with_v() {
        let filter = |verbose, quiet| default_filter(verbose, quiet, Reader::Person);
        assert!(filter(0, false).would_enable(SUMMARY, &Level::INFO));
        assert!(!filter(0, false).would_enable(AUDIT, &Level::INFO));
        assert!(filter(0, false).would_enable(CHANGE, &Level::INFO));
        assert!(filter(0, false).would_enable(AUDIT, &Level::WARN));
        assert!(filter(1, false).would_enable(AUDIT, &Level::INFO));
        assert!(!filter(0, true).would_enable(SUMMARY, &Level::INFO));
    }

    #[test]
    fn the_final_error_in_json_is_one_line_with_a_timestamp() {
        let line = error_json("2 variables cannot be resolved:\n  A (x): \u{1b}[31m");
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "{line}");
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["level"], "ERROR");
        let timestamp = parsed["timestamp"].as_str().unwrap();
        assert!(
            timestamp.ends_with('Z') && timestamp.contains('T'),
            "{timestamp}"
        );
        assert!(
            parsed["message"]
                .as_str()
                .unwrap()
                .starts_with("2 variables")
        );
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
