//! `[process]` and its flags: how envoke stops its child, and the signal names they take.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::layer::{Given, Layers, duration};
use super::watch::at_most;
use super::{ConfigError, Flags};
use crate::manifest::ProcessSection;

/// How signals from outside map to what the child receives (`--signal-map FROM:TO`).
pub type SignalMap = HashMap<Signal, Signal>;

/// How envoke stops its child.
#[derive(Debug, Clone)]
pub struct StopPolicy {
    /// What envoke sends when it decides to stop the child itself.
    pub stop_signal: Signal,
    /// How long a stopping child may take before SIGKILL.
    pub stop_timeout: Duration,
    /// `[process] signal_map` with `--signal-map` over it: a signal envoke receives is sent to
    /// the child as the one it maps to.
    pub signal_map: SignalMap,
}

impl Default for StopPolicy {
    fn default() -> StopPolicy {
        StopPolicy {
            stop_signal: Signal::SIGTERM,
            stop_timeout: Duration::from_secs(10),
            signal_map: SignalMap::new(),
        }
    }
}

impl StopPolicy {
    /// The flags (and their `ENVOKE_*` variables) first, then the manifest's `[process]`, then
    /// the defaults. Signal mappings add up: the manifest's, then the flags' over them.
    pub(super) fn load(
        flags: &Flags,
        section: &ProcessSection,
        layers: &Layers<'_>,
    ) -> Result<StopPolicy, ConfigError> {
        let defaults = StopPolicy::default();
        let stop_signal = layers.first(
            vec![
                Given::Flag("--stop-signal (ENVOKE_STOP_SIGNAL)", flags.stop_signal),
                Given::Manifest("process", "stop_signal", section.stop_signal.as_deref()),
            ],
            parse_signal,
        )?;
        let stop_timeout = layers
            .first(
                vec![
                    Given::Flag("--stop-timeout (ENVOKE_STOP_TIMEOUT)", flags.stop_timeout),
                    Given::Manifest("process", "stop_timeout", section.stop_timeout.as_deref()),
                ],
                duration,
            )?
            .map(|found| found.check(layers, at_most))
            .transpose()?;
        let mut signal_map = SignalMap::new();
        for text in &section.signal_map {
            let mapping = layers.first(
                vec![Given::Manifest("process", "signal_map", Some(text))],
                parse_signal_mapping,
            )?;
            signal_map.extend(mapping.map(|found| found.value));
        }
        signal_map.extend(flags.signal_map.iter().copied());
        Ok(StopPolicy {
            stop_signal: stop_signal.map_or(defaults.stop_signal, |found| found.value),
            stop_timeout: stop_timeout.unwrap_or(defaults.stop_timeout),
            signal_map,
        })
    }
}

/// Parses a signal name (`TERM`, `SIGTERM`, `term`) or number (`15`).
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let trimmed = text.trim();
    if let Ok(number) = trimmed.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| format!("unknown signal number {number}"));
    }
    let upper = trimmed.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| format!("unknown signal `{text}` (e.g. TERM, SIGQUIT, 15)"))
}

/// Parses `FROM:TO` for `--signal-map`.
pub fn parse_signal_mapping(text: &str) -> Result<(Signal, Signal), String> {
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not FROM:TO (e.g. TERM:QUIT)"))?;
    Ok((parse_signal(from)?, parse_signal(to)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("TERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("sigquit"), Ok(Signal::SIGQUIT));
        assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
        assert!(parse_signal("NOPE").is_err());
        assert_eq!(
            parse_signal_mapping("TERM:QUIT"),
            Ok((Signal::SIGTERM, Signal::SIGQUIT))
        );
        assert!(parse_signal_mapping("TERM").is_err());
    }

    /// A grace period above the watch durations' ceiling is a typo (`10000y`), refused at load
    /// naming where it was given, not a stop that silently never ends.
    #[test]
    fn a_stop_timeout_above_the_ceiling_is_refused_naming_its_place() {
        let environment = Vec::new();
        let layers = Layers {
            manifest: None,
            environment: crate::config::OwnEnvironment(&environment),
        };
        let huge = ProcessSection {
            stop_timeout: Some("10000y".to_owned()),
            ..ProcessSection::default()
        };
        let error = StopPolicy::load(&Flags::default(), &huge, &layers).unwrap_err();
        assert!(
            error.to_string().contains("[process] stop_timeout"),
            "{error}"
        );
        assert!(error.to_string().contains("ceiling"), "{error}");
        let flags = Flags {
            stop_timeout: Some(Duration::from_secs(u64::MAX / 4)),
            ..Flags::default()
        };
        let error = StopPolicy::load(&flags, &ProcessSection::default(), &layers).unwrap_err();
        assert!(error.to_string().contains("--stop-timeout"), "{error}");
        let year = ProcessSection {
            stop_timeout: Some("1y".to_owned()),
            ..ProcessSection::default()
        };
        assert!(StopPolicy::load(&Flags::default(), &year, &layers).is_ok());
    }
}
