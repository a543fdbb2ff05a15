//! `[watch]` and its flags: whether and how envoke watches the secrets while the child runs.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::layer::{self, Given, Layers};
use super::process::{parse_signal, parse_signal_mapping};
use super::{ConfigError, Flags};
use crate::manifest::{ProcessSection, WatchSection};
use crate::reference::{AwsVersion, Reference};
use crate::sanitize::escaped;

/// The shortest poll interval (`--watch`, `[watch] interval`): anything shorter is a busy loop
/// against the backends, not rotation watching (docs/rotation.md).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest settle window (`--settle`, `[watch] settle`).
pub const MIN_SETTLE: Duration = Duration::from_millis(100);

/// The interval of `--watch` without one (and of `ENVOKE_WATCH=on`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// The longest interval, settle window, sweep period or splay: a year. Longer is a typo, not a
/// setting, and the watcher's clocks could not add it to the time of day without overflowing.
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600); // humantime's `1y`: 365.25 d

/// How watching behaves.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Poll interval (±10% jitter).
    pub interval: Duration,
    /// What a change does to the child: `--on-change`, `[watch] on_change`; restart otherwise.
    pub on_change: OnChange,
    /// Changes within this window coalesce.
    pub settle: Duration,
    /// How often the AWS secrets that no rotation is due for are checked (ListSecrets): the
    /// interval unless `--sweep` says longer, so that `--watch 5m` sees a change made by hand
    /// within 5 minutes; never less than `interval`.
    pub sweep: Duration,
    /// The longest random delay before a restart or exit after a change.
    pub splay: Duration,
    /// The signal that makes envoke check every secret at once, instead of forwarding it.
    pub recheck_signal: Option<Signal>,
    /// The secret whose change makes envoke check every secret at once (`--recheck-on`): a
    /// fleet rechecks without a signal (ECS on Fargate cannot send one).
    pub recheck_on: Option<Reference>,
}

impl WatchOptions {
    /// `--watch` and the other flags (and their `ENVOKE_*` variables) first, then the
    /// manifest's `[watch]`, then the defaults; watching is on when either sets an interval.
    pub(super) fn load(
        flags: &Flags,
        section: &WatchSection,
        process: &ProcessSection,
        layers: &Layers<'_>,
    ) -> Result<Option<WatchOptions>, ConfigError> {
        let recheck = recheck(flags, section, layers)?;
        let interval = duration(
            layers,
            Given::Flag("--watch (ENVOKE_WATCH)", flags.watch),
            ("interval", &section.interval),
            &|value| at_least(value, MIN_INTERVAL, "interval").and_then(at_most),
        )?;
        check_recheck(recheck, interval.is_some(), flags, process)?;
        let recheck_on = recheck_on(flags, section, layers, interval.is_some())?;
        let Some(interval) = interval else {
            return Ok(None);
        };
        let on_change = layers
            .first(
                vec![
                    Given::Flag("--on-change (ENVOKE_ON_CHANGE)", flags.on_change.clone()),
                    Given::Manifest("watch", "on_change", section.on_change.as_deref()),
                ],
                OnChange::parse,
            )?
            .map_or(OnChange::Restart, |found| found.value);
        let settle = duration(
            layers,
            Given::Flag("--settle", flags.settle),
            ("settle", &section.settle),
            &|value| at_least(value, MIN_SETTLE, "settle window").and_then(at_most),
        )?
        .unwrap_or(Duration::from_secs(2));
        // A sweep more often than the polls has nothing to do between them: it is the interval.
        let sweep = duration(
            layers,
            Given::Flag("--sweep", flags.sweep),
            ("sweep", &section.sweep),
            &at_most,
        )?
        .unwrap_or(interval)
        .max(interval);
        let splay = duration(
            layers,
            Given::Flag("--splay", flags.splay),
            ("splay", &section.splay),
            &at_most,
        )?
        .unwrap_or(Duration::ZERO);
        Ok(Some(WatchOptions {
            interval,
            on_change,
            settle,
            sweep,
            splay,
            recheck_signal: recheck,
            recheck_on,
        }))
    }
}

/// A duration of `[watch]`: its flag, else its key (`key`, the manifest's text), passed through
/// `check`; `None` when neither gives one.
fn duration(
    layers: &Layers<'_>,
    flag: Given<'_, Duration>,
    (key, text): (&'static str, &Option<String>),
    check: &dyn Fn(Duration) -> Result<Duration, String>,
) -> Result<Option<Duration>, ConfigError> {
    layers
        .first(
            vec![flag, Given::Manifest("watch", key, text.as_deref())],
            layer::duration,
        )?
        .map(|found| found.check(layers, check))
        .transpose()
}

/// `--recheck-signal` or `[watch] recheck_signal`, when one is set and may be one.
fn recheck(
    flags: &Flags,
    section: &WatchSection,
    layers: &Layers<'_>,
) -> Result<Option<Signal>, ConfigError> {
    layers
        .first(
            vec![
                Given::Flag(
                    "--recheck-signal (ENVOKE_RECHECK_SIGNAL)",
                    flags.recheck_signal,
                ),
                Given::Manifest("watch", "recheck_signal", section.recheck_signal.as_deref()),
            ],
            parse_signal,
        )?
        .map(|found| found.check(layers, recheck_signal))
        .transpose()
}

/// `--recheck-on REF` or `[watch] recheck_on`: a secret to watch for a recheck of everything. It
/// needs watching, and a version that can move (no `?version=` pin).
fn recheck_on(
    flags: &Flags,
    section: &WatchSection,
    layers: &Layers<'_>,
    watching: bool,
) -> Result<Option<Reference>, ConfigError> {
    let Some(found) = layers.first_text(vec![
        Given::Flag("--recheck-on (ENVOKE_RECHECK_ON)", flags.recheck_on.clone()),
        Given::Manifest("watch", "recheck_on", section.recheck_on.as_deref()),
    ]) else {
        return Ok(None);
    };
    found
        .check(layers, |text| {
            let reference = Reference::parse(&text)
                .map_err(|error| format!("`{}` is not a reference: {error}", escaped(&text)))?;
            if !watching {
                return Err(format!(
                    "{reference} would recheck secrets that nothing watches: add --watch (or \
                     [watch] interval), or drop it"
                ));
            }
            let pinned = match &reference {
                Reference::Aws(r) => matches!(r.version, AwsVersion::Id(_)),
                Reference::Vault(r) => r.version.is_some(),
            };
            if pinned {
                return Err(format!(
                    "{reference} is pinned to a version, which never changes; name the secret \
                     without ?version="
                ));
            }
            Ok(reference)
        })
        .map(Some)
}

/// A recheck signal needs watching, and must not be mapped by `--signal-map` too.
fn check_recheck(
    recheck: Option<Signal>,
    watching: bool,
    flags: &Flags,
    process: &ProcessSection,
) -> Result<(), ConfigError> {
    let Some(sig) = recheck else {
        return Ok(());
    };
    if !watching {
        return Err(recheck_error(format!(
            "{sig} would recheck secrets that nothing watches: add --watch (or [watch] \
             interval), or drop it"
        )));
    }
    if is_mapped(sig, flags, process) {
        return Err(recheck_error(format!(
            "{sig} is also mapped by --signal-map; it cannot be both"
        )));
    }
    Ok(())
}

/// Whether `--signal-map` or `[process] signal_map` maps `sig` (then it cannot be the recheck
/// signal too).
fn is_mapped(sig: Signal, flags: &Flags, process: &ProcessSection) -> bool {
    flags.signal_map.iter().any(|(from, _)| *from == sig)
        || process
            .signal_map
            .iter()
            .filter_map(|text| parse_signal_mapping(text).ok())
            .any(|(from, _)| from == sig)
}

/// The recheck signal cannot be used, wherever it was set.
fn recheck_error(reason: String) -> ConfigError {
    ConfigError::BadValue {
        setting: "--recheck-signal (ENVOKE_RECHECK_SIGNAL, [watch] recheck_signal)".to_owned(),
        reason,
    }
}

/// `value` when it is at least `floor`; else why not (`what` names the setting in the reason).
fn at_least(value: Duration, floor: Duration, what: &str) -> Result<Duration, String> {
    if value < floor {
        return Err(format!(
            "{} is below the floor of {} (a shorter {what} makes a busy loop, not a watch); use {} \
             or more",
            humantime::format_duration(value),
            humantime::format_duration(floor),
            humantime::format_duration(floor),
        ));
    }
    Ok(value)
}

/// `value` when it is at most [`MAX_DURATION`]; else why not. Also the ceiling of
/// `[process] stop_timeout`: a longer one is a typo (`10000y`), not a wait.
pub(super) fn at_most(value: Duration) -> Result<Duration, String> {
    if value > MAX_DURATION {
        return Err(format!(
            "{} is above the ceiling of {}; use {} or less",
            humantime::format_duration(value),
            humantime::format_duration(MAX_DURATION),
            humantime::format_duration(MAX_DURATION),
        ));
    }
    Ok(value)
}

/// A signal `--recheck-signal` may take: HUP, USR1, USR2 or ALRM, the forwarded signals that
/// only a person or a program sends on purpose. Every other one stops, kills or suspends envoke
/// or its child, reports a child's exit or a fault, or comes by itself from the terminal (WINCH
/// at each resize), job control (CONT) or the kernel (URG, IO, XCPU, timers): a full check of
/// every secret each time. `Err` says why not.
pub fn recheck_signal(sig: Signal) -> Result<Signal, String> {
    let why = match sig {
        Signal::SIGHUP | Signal::SIGUSR1 | Signal::SIGUSR2 | Signal::SIGALRM => return Ok(sig),
        Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT => {
            "it stops envoke and the command; pick one the command does not use"
        }
        Signal::SIGKILL | Signal::SIGSTOP => "it cannot be caught",
        Signal::SIGCHLD => "envoke reaps children on it",
        Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU | Signal::SIGCONT => {
            "it is job control"
        }
        Signal::SIGWINCH => "the terminal sends it at every resize",
        Signal::SIGILL
        | Signal::SIGFPE
        | Signal::SIGSEGV
        | Signal::SIGBUS
        | Signal::SIGTRAP
        | Signal::SIGABRT
        | Signal::SIGSYS => "it reports a fault",
        Signal::SIGPIPE => "it reports a closed pipe",
        _ => "the kernel sends it by itself (sockets, timers, resource limits)",
    };
    Err(format!(
        "{sig} cannot be the recheck signal: {why}; use USR2 (or HUP, USR1, ALRM)"
    ))
}

/// `--on-change`: what a changed value does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnChange {
    /// Stop the child, resolve afresh, start it again.
    Restart,
    /// Send a signal (for programs that re-read secret files).
    Signal(Signal),
    /// Stop the child and exit with 75, so the orchestrator replaces the task.
    Exit,
    /// Log only.
    None,
}

impl OnChange {
    /// Parses `restart`, `signal:SIGNAME`, `exit` or `none`.
    pub fn parse(text: &str) -> Result<OnChange, String> {
        match text {
            "restart" => Ok(OnChange::Restart),
            "exit" => Ok(OnChange::Exit),
            "none" => Ok(OnChange::None),
            _ => match text.strip_prefix("signal:") {
                Some(name) => parse_signal(name).map(OnChange::Signal),
                None => Err(format!(
                    "`{text}` is not restart, signal:SIGNAME, exit or none"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_change_forms() {
        assert_eq!(OnChange::parse("restart"), Ok(OnChange::Restart));
        assert_eq!(OnChange::parse("exit"), Ok(OnChange::Exit));
        assert_eq!(OnChange::parse("none"), Ok(OnChange::None));
        assert_eq!(
            OnChange::parse("signal:HUP"),
            Ok(OnChange::Signal(Signal::SIGHUP))
        );
        assert!(OnChange::parse("signal:NOPE").is_err());
        assert!(OnChange::parse("reload").is_err());
    }

    #[test]
    fn recheck_signals() {
        assert_eq!(recheck_signal(Signal::SIGUSR2), Ok(Signal::SIGUSR2));
        assert_eq!(recheck_signal(Signal::SIGHUP), Ok(Signal::SIGHUP));
        assert_eq!(recheck_signal(Signal::SIGUSR1), Ok(Signal::SIGUSR1));
        assert_eq!(recheck_signal(Signal::SIGALRM), Ok(Signal::SIGALRM));
        for sig in [
            Signal::SIGWINCH,
            Signal::SIGCONT,
            Signal::SIGURG,
            Signal::SIGIO,
            Signal::SIGXCPU,
            Signal::SIGVTALRM,
            #[cfg(target_os = "linux")]
            Signal::SIGPWR,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGKILL,
            Signal::SIGSTOP,
            Signal::SIGCHLD,
            Signal::SIGSEGV,
        ] {
            assert!(recheck_signal(sig).is_err(), "{sig}");
        }
    }
}
