//! Rotation: watch the referenced secrets while the child runs, and act when one changes.
//!
//! # Detecting a change without keeping values
//! Between launches envoke holds versions and keyed hashes ([`crate::secret::SecretValue::keyed_digest`]),
//! never values. Each poll asks, per distinct secret and concurrently:
//! - AWS: `VersionIdsToStages` — does the stage we follow (AWSCURRENT or the `version-stage`
//!   asked for) still point at the version id we launched with? Asked with DescribeSecret at
//!   every poll only while a scheduled rotation is due; the other secrets are swept with
//!   ListSecrets every `--sweep` ([`schedule`] explains the trade-off).
//! - Vault KV v2: the metadata's `current_version`.
//! - Vault KV v1 (and lease-less reads of other engines): no metadata, so the document is re-read
//!   and its keyed hash compared; the value is dropped (zeroized) at once.
//! - Leased secrets: the lease is renewed at about two thirds of its TTL; when it cannot be
//!   renewed, or the renewal comes back short (the max TTL is near), the secret counts as changed
//!   and fresh credentials are fetched.
//!
//! References pinned to a version never change and are not polled.
//!
//! # Acting
//! Changes seen within the settle window coalesce. The changed secrets are resolved again and
//! compared variable by variable: when no variable's value differs (an unreferenced key changed),
//! nothing happens. Otherwise `--on-change` decides: `restart` resolves the whole environment
//! afresh and asks the supervisor to restart the child; `signal:SIG` rewrites the secret files and
//! signals the child; `exit` stops the child and envoke exits with 75; `none` logs.
//!
//! # Rechecks and splay
//! The recheck signal (`--recheck-signal`) wakes the loop at once for a check of every secret,
//! AWS ones with DescribeSecret whatever their schedule, Vault leases with a renewal whatever
//! their TTL (a revoked lease fails to renew, and that is a change). A recheck within
//! [`RECHECK_GAP`] of the last forced check waits for the gap to end, and while checks fail it
//! waits for the backoff: signals meanwhile, or during a check, coalesce into that one.
//!
//! `--splay` waits a random delay before a restart or exit, so that a fleet that sees one
//! rotation does not restart every task in the same second; the delay is capped at half the time
//! a replaced lease has left and at the next renewal of any other lease (nothing is renewed
//! during the wait), and skipped when a lease could not be renewed (the command's credentials
//! are dead already).
//!
//! # Outages
//! A failed check never touches the child: envoke logs a warning (no values), backs off
//! exponentially with jitter up to the interval, and carries on when the backend returns.

mod act;
mod detect;
mod leases;
mod recheck;
mod schedule;
mod timing;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use nix::unistd::Pid;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::leases::LeaseClock;
pub use self::leases::LeaseLedger;
use self::recheck::RecheckSecret;
use self::timing::{backoff, jittered, recheck_at};
use crate::config::Config;
use crate::config::watch::{MAX_DURATION, WatchOptions};
use crate::launch::files::SecretFiles;
use crate::launch::mask::OutputMask;
use crate::launch::supervise::Control;
use crate::provider::Backends;
use crate::provider::aws::RotationSchedule;
use crate::resolve::{FetchKey, Fetched, Resolution};
use crate::secret::Digest;

/// What the watcher resolves and acts with; `run` holds the same handles.
pub struct Context {
    /// What to resolve again, how to build the environment, and how to watch (`config.watch`).
    pub config: Arc<Config>,
    /// The connected backends.
    pub backends: Arc<Backends>,
    /// The secret files, rewritten by `--on-change signal:SIG`.
    pub files: Option<Arc<SecretFiles>>,
    /// With `--mask`: told of values that reach the child without a restart (`signal:SIG`).
    pub mask: Option<Arc<OutputMask>>,
    /// The leases of the command's credentials; `run` revokes what it holds at exit.
    pub leases: LeaseLedger,
}

/// The watcher's handle to the supervisor.
pub struct SupervisorHandle {
    /// Where the watcher's requests go.
    pub control: mpsc::UnboundedSender<Control>,
    /// The running child (the first one the supervisor started, then each restart's).
    pub pid: Pid,
    /// Notified when the recheck signal arrives.
    pub recheck: Arc<Notify>,
}

/// What the watcher has seen of the secrets the command has: versions, keyed hashes, lease
/// clocks and schedules. Never a value.
struct Seen {
    watched: BTreeMap<FetchKey, Fetched>,
    lease_clocks: BTreeMap<FetchKey, LeaseClock>,
    variable_digests: BTreeMap<String, Digest>,
    /// AWS secrets whose stage moved: the version id it points at now. Fetching by that id
    /// avoids a race with a further move between DescribeSecret and the fetch.
    pins: HashMap<FetchKey, String>,
    /// Secrets whose check was denied, reported once at ERROR and quietly after that.
    denied: BTreeSet<FetchKey>,
    /// Leased secrets whose renewal failed since the last action: the command's credentials
    /// are dead, so acting on them waits no splay.
    dead: BTreeSet<FetchKey>,
    /// The rotation schedule each AWS secret had when last described or swept.
    schedules: HashMap<FetchKey, RotationSchedule>,
    /// When the last sweep ran (or watching began).
    last_sweep: Instant,
    /// Whether a denied ListSecrets was reported (once).
    said_list_denied: bool,
    /// AWS secrets whose name ListSecrets could not find among the many others it matches:
    /// described at each sweep instead, so they no longer crowd the others of their call.
    crowded: BTreeSet<FetchKey>,
}

/// The watcher: runs as its own task, reaches the supervisor through [`Control`] messages.
pub struct Watcher {
    context: Context,
    supervisor: SupervisorHandle,
    seen: Seen,
    /// `--recheck-on`: the secret whose change makes a poll check everything.
    recheck_secret: Option<RecheckSecret>,
}

/// Why a poll checks what it checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// The interval came round (or a lease fell due): what is due is checked.
    Poll,
    /// The recheck signal: everything is checked.
    RecheckSignal,
    /// The `--recheck-on` secret changed: everything is checked.
    RecheckSecret,
}

impl Cause {
    /// Whether everything is checked, whatever its schedule.
    fn forced(self) -> bool {
        self != Cause::Poll
    }

    /// As the log lines of a change name it.
    fn name(self) -> &'static str {
        match self {
            Cause::Poll => "poll",
            Cause::RecheckSignal => "recheck signal",
            Cause::RecheckSecret => "recheck secret",
        }
    }
}

impl Watcher {
    /// Starts watching when `config.watch` says so, remembering what the first launch used
    /// (versions, hashes, leases; no values).
    pub fn start(
        context: Context,
        resolution: &Resolution,
        supervisor: SupervisorHandle,
    ) -> Option<JoinHandle<()>> {
        let options = context.config.watch.as_ref()?;
        tracing::info!(
            interval = ?options.interval,
            sweep = ?options.sweep,
            splay = ?options.splay,
            recheck_signal = options.recheck_signal.map(|s| s.as_str()),
            on_change = ?options.on_change,
            "watching for changes"
        );
        let recheck_secret = options.recheck_on.as_ref().map(RecheckSecret::new);
        let mut watcher = Watcher {
            context,
            supervisor,
            recheck_secret,
            seen: Seen {
                watched: BTreeMap::new(),
                lease_clocks: BTreeMap::new(),
                variable_digests: BTreeMap::new(),
                pins: HashMap::new(),
                denied: BTreeSet::new(),
                dead: BTreeSet::new(),
                schedules: HashMap::new(),
                last_sweep: Instant::now(),
                said_list_denied: false,
                crowded: BTreeSet::new(),
            },
        };
        watcher.remember(resolution);
        Some(tokio::spawn(watcher.run()))
    }

    /// Remembers what the command now has: each watched secret (versions, keyed hashes),
    /// its lease's clock, and each variable's keyed hash. No values.
    pub(super) fn remember(&mut self, resolution: &Resolution) {
        for fetched in &resolution.fetched {
            if fetched.key.pinned() {
                continue;
            }
            match &fetched.lease {
                Some(lease) => {
                    self.seen
                        .lease_clocks
                        .insert(fetched.key.clone(), LeaseClock::new(lease.clone()));
                }
                None => {
                    self.seen.lease_clocks.remove(&fetched.key);
                }
            }
            self.seen
                .watched
                .insert(fetched.key.clone(), fetched.clone());
        }
        for outcome in &resolution.outcomes {
            if let Ok(value) = &outcome.result {
                self.seen
                    .variable_digests
                    .insert(outcome.name.clone(), value.keyed_digest());
            }
        }
    }

    /// Polls until the task is dropped.
    async fn run(mut self) {
        let config = Arc::clone(&self.context.config);
        let Some(options) = &config.watch else {
            return;
        };
        let mut failures: u32 = 0;
        // When the last forced check began.
        let mut last_forced: Option<Instant> = None;
        // The recheck secret's baseline, before the first wait.
        let _ = self.recheck_secret_moved().await;
        loop {
            let mut cause = if self.next_check(options, failures, last_forced).await {
                Cause::RecheckSignal
            } else {
                Cause::Poll
            };
            if cause == Cause::RecheckSignal {
                tracing::info!(target: "envoke::change", cause = cause.name(), "recheck signal: checking every secret now");
            }
            let recheck_secret = self.recheck_secret_moved().await;
            if cause == Cause::Poll && recheck_secret == Ok(true) {
                cause = Cause::RecheckSecret;
            }
            if cause.forced() {
                last_forced = Some(Instant::now());
            }
            let (mut changed, mut errors) = self.detect(cause).await;
            errors += usize::from(recheck_secret.is_err());
            if !changed.is_empty() {
                // Coalesce what else changes within the settle window.
                tokio::time::sleep(options.settle).await;
                let (more, _) = self.detect(Cause::Poll).await;
                changed.extend(more);
            }
            let outcome = if changed.is_empty() {
                Ok(())
            } else {
                self.act(changed, &options.on_change).await
            };
            match (errors, outcome) {
                (0, Ok(())) => failures = 0,
                (_, result) => {
                    if let Err(error) = result {
                        tracing::warn!(%error, "cannot act on a change; the child keeps running");
                    }
                    failures = failures.saturating_add(1);
                }
            }
        }
    }

    /// Whether the `--recheck-on` secret moved since the last poll (said at the default level);
    /// `Err` when it could not be asked (said, and counted as a failed check).
    async fn recheck_secret_moved(&mut self) -> Result<bool, ()> {
        let Some(secret) = &mut self.recheck_secret else {
            return Ok(false);
        };
        match secret.moved(&self.context.backends).await {
            Ok(None) => Ok(false),
            Ok(Some((from, to))) => {
                tracing::info!(
                    target: "envoke::change",
                    secret = %secret.key(),
                    cause = "recheck secret",
                    "the recheck secret moved from version {from} to {to}: checking every secret now"
                );
                Ok(true)
            }
            Err(error) => {
                tracing::warn!(secret = %secret.key(), %error, "cannot ask the recheck secret's version; will retry");
                Err(())
            }
        }
    }

    /// Waits for the next check: the jittered interval (the backoff while checks fail), a
    /// lease falling due, or a recheck signal. Whether the check is forced (the signal asked
    /// for every secret).
    async fn next_check(
        &self,
        options: &WatchOptions,
        failures: u32,
        last_forced: Option<Instant>,
    ) -> bool {
        let wait = if failures == 0 {
            jittered(options.interval)
        } else {
            backoff(failures, options.interval)
        };
        let now = Instant::now();
        // Durations are bounded at config load (a year); this is belt and braces.
        let mut wake = now.checked_add(wait).unwrap_or(now + MAX_DURATION);
        // A lease whose renewal failed stays due: while checks fail, it is retried at the
        // backoff's pace with the rest, not at once (leases falling due later still count).
        let next_due = self
            .seen
            .lease_clocks
            .values()
            .map(LeaseClock::due)
            .filter(|due| failures == 0 || *due > now)
            .min();
        if let Some(due) = next_due {
            wake = wake.min(due);
        }
        // A recheck signal makes the next check a forced one, and brings it forward as far as
        // `recheck_at` allows; more signals until then are the same request.
        let mut rechecked = false;
        let mut at = wake;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(at) => return rechecked,
                // Signals while one waits for its turn are absorbed into it.
                () = self.supervisor.recheck.notified() => {
                    if rechecked {
                        continue;
                    }
                    rechecked = true;
                    at = recheck_at(Instant::now(), last_forced, failures, wake);
                    let wait = at.saturating_duration_since(Instant::now());
                    if !wait.is_zero() {
                        tracing::info!(
                            in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                            "recheck signal: checking at the end of the {}",
                            if failures > 0 { "backoff (checks are failing)" } else { "minimum gap between rechecks" }
                        );
                    }
                }
            }
        }
    }
}
