//! Rotation: watch the referenced secrets while the child runs, and act when one changes.
//!
//! # Detecting a change without keeping values
//! Between launches envoke holds versions and keyed hashes ([`crate::secret::SecretValue::keyed_digest`]),
//! never values. Each poll asks, per distinct secret and concurrently:
//! - AWS: DescribeSecret's `VersionIdsToStages` — does the stage we follow (AWSCURRENT or the
//!   `version-stage` asked for) still point at the version id we launched with?
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
//! signals the child; `exit` stops the child and exits with [`EXIT_ON_CHANGE`]; `none` logs.
//!
//! # Outages
//! A failed check never touches the child: envoke logs a warning (no values), backs off
//! exponentially with jitter up to the interval, and carries on when the backend returns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::Config;
use crate::launch::ChildEnvironment;
use crate::launch::files::SecretFiles;
use crate::launch::signals::parse_signal;
use crate::launch::supervise::Control;
use crate::provider::{DocumentKind, FetchError, Lease};
use crate::reference::AwsVersion;
use crate::resolve::{Backends, FetchKey, Fetched, Resolution, resolve_only};
use crate::secret::Digest;

/// envoke's exit code for `--on-change exit` (EX_TEMPFAIL: "try again", so an orchestrator
/// starts a fresh task).
pub const EXIT_ON_CHANGE: u8 = 75;

/// How watching behaves.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Poll interval (±10% jitter).
    pub interval: Duration,
    /// What a change does.
    pub on_change: OnChange,
    /// Changes within this window coalesce.
    pub settle: Duration,
}

/// `--on-change`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnChange {
    /// Stop the child, resolve afresh, start it again.
    Restart,
    /// Send a signal (for programs that re-read secret files).
    Signal(Signal),
    /// Exit with [`EXIT_ON_CHANGE`] so the orchestrator replaces the task.
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

/// The Vault leases envoke holds, shared with whoever revokes them at exit.
pub type HeldLeases = Arc<Mutex<Vec<Lease>>>;

/// A lease and when it was last obtained or renewed.
#[derive(Debug, Clone)]
struct LeaseClock {
    lease: Lease,
    since: Instant,
    issued_ttl: u64,
}

impl LeaseClock {
    fn new(lease: Lease) -> LeaseClock {
        LeaseClock {
            issued_ttl: lease.duration_secs,
            lease,
            since: Instant::now(),
        }
    }

    /// About two thirds into the lease.
    fn due(&self) -> Instant {
        self.since + Duration::from_millis(self.lease.duration_secs * 2000 / 3)
    }
}

/// The watcher: runs as its own task, talks to the supervisor through [`Control`] messages.
pub struct Watcher {
    config: Arc<Config>,
    backends: Arc<Backends>,
    options: WatchOptions,
    watched: BTreeMap<FetchKey, Fetched>,
    leases: BTreeMap<FetchKey, LeaseClock>,
    variable_digests: BTreeMap<String, Digest>,
    /// AWS secrets whose stage moved: the version id it points at now. Fetching by that id
    /// avoids a race with a further move between DescribeSecret and the fetch.
    pins: HashMap<FetchKey, String>,
    files: Option<Arc<SecretFiles>>,
    held: HeldLeases,
    control: mpsc::UnboundedSender<Control>,
}

impl Watcher {
    /// Remembers what the first launch used (versions, hashes, leases; no values).
    pub fn new(
        config: Arc<Config>,
        backends: Arc<Backends>,
        options: WatchOptions,
        resolution: &Resolution,
        files: Option<Arc<SecretFiles>>,
        held: HeldLeases,
        control: mpsc::UnboundedSender<Control>,
    ) -> Watcher {
        let mut watcher = Watcher {
            config,
            backends,
            options,
            watched: BTreeMap::new(),
            leases: BTreeMap::new(),
            variable_digests: BTreeMap::new(),
            pins: HashMap::new(),
            files,
            held,
            control,
        };
        watcher.remember(resolution);
        watcher
    }

    fn remember(&mut self, resolution: &Resolution) {
        for fetched in &resolution.fetched {
            if fetched.key.pinned() {
                continue;
            }
            match &fetched.lease {
                Some(lease) => {
                    self.leases
                        .insert(fetched.key.clone(), LeaseClock::new(lease.clone()));
                }
                None => {
                    self.leases.remove(&fetched.key);
                }
            }
            self.watched.insert(fetched.key.clone(), fetched.clone());
        }
        for outcome in &resolution.outcomes {
            if let Ok(value) = &outcome.result {
                self.variable_digests
                    .insert(outcome.name.clone(), value.keyed_digest());
            }
        }
    }

    /// Polls until the task is dropped.
    pub async fn run(mut self) {
        let mut failures: u32 = 0;
        loop {
            let wait = if failures == 0 {
                jittered(self.options.interval)
            } else {
                backoff(failures, self.options.interval)
            };
            let now = Instant::now();
            let mut wake = now + wait;
            // A lease whose renewal failed stays due: while checks fail, it is retried at the
            // backoff's pace with the rest, not at once (leases falling due later still count).
            let next_due = self
                .leases
                .values()
                .map(LeaseClock::due)
                .filter(|due| failures == 0 || *due > now)
                .min();
            if let Some(due) = next_due {
                wake = wake.min(due);
            }
            tokio::time::sleep_until(wake).await;
            let (mut changed, errors) = self.detect().await;
            if !changed.is_empty() {
                // Coalesce what else changes within the settle window.
                tokio::time::sleep(self.options.settle).await;
                let (more, _) = self.detect().await;
                changed.extend(more);
            }
            let outcome = if changed.is_empty() {
                Ok(())
            } else {
                self.act(changed).await
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

    /// The watched secrets that changed; and how many checks failed.
    async fn detect(&mut self) -> (BTreeSet<FetchKey>, usize) {
        let now = Instant::now();
        let checks = self
            .watched
            .values()
            .map(|fetched| self.check(fetched, self.leases.get(&fetched.key), now));
        let results = join_all(checks).await;
        let mut changed = BTreeSet::new();
        let mut errors = 0;
        for result in results {
            match result {
                (key, Ok(Verdict::Same)) => tracing::debug!(secret = %key, "no change"),
                (key, Ok(Verdict::Renewed(lease))) => {
                    tracing::debug!(secret = %key, ttl = lease.duration_secs, "lease renewed");
                    if let Some(clock) = self.leases.get_mut(&key) {
                        clock.lease = lease;
                        clock.since = Instant::now();
                    }
                }
                (key, Ok(Verdict::Changed(why, version_id))) => {
                    tracing::info!(secret = %key, "{why}");
                    if let Some(version_id) = version_id {
                        self.pins.insert(key.clone(), version_id);
                    }
                    changed.insert(key);
                }
                (key, Err(error)) => {
                    tracing::warn!(secret = %key, %error, "cannot check for a change; will retry");
                    errors += 1;
                }
            }
        }
        (changed, errors)
    }

    async fn check(
        &self,
        fetched: &Fetched,
        lease: Option<&LeaseClock>,
        now: Instant,
    ) -> (FetchKey, Result<Verdict, FetchError>) {
        let key = fetched.key.clone();
        if let Some(clock) = lease {
            return (key, self.check_lease(clock, now).await);
        }
        let verdict = async {
            match (&fetched.kind, &key) {
                (DocumentKind::Aws, FetchKey::Aws(request)) => {
                    let stage = match &request.version {
                        AwsVersion::Stage(stage) => stage.as_str(),
                        _ => "AWSCURRENT",
                    };
                    let now = self
                        .backends
                        .aws()?
                        .version_holding(&request.secret_id, stage)
                        .await?;
                    Ok(if now == fetched.version {
                        Verdict::Same
                    } else {
                        Verdict::Changed(
                            format!(
                                "{stage} moved from version {} to {}",
                                fetched.version.as_deref().unwrap_or("-"),
                                now.as_deref().unwrap_or("-")
                            ),
                            now,
                        )
                    })
                }
                (DocumentKind::VaultKv2 { mount, rest }, _) => {
                    let current = self
                        .backends
                        .vault()?
                        .kv2_current_version(mount, rest)
                        .await?;
                    let current = current.to_string();
                    Ok(if Some(&current) == fetched.version.as_ref() {
                        Verdict::Same
                    } else {
                        Verdict::Changed(
                            format!(
                                "new version {current} (was {})",
                                fetched.version.as_deref().unwrap_or("-")
                            ),
                            None,
                        )
                    })
                }
                (_, FetchKey::Vault { path, version }) => {
                    let document = self.backends.vault()?.read(path, *version).await?;
                    Ok(if document.value.keyed_digest() == fetched.digest {
                        Verdict::Same
                    } else {
                        Verdict::Changed("content changed".to_owned(), None)
                    })
                }
                (_, FetchKey::Aws(_)) => Ok(Verdict::Same),
            }
        }
        .await;
        (key, verdict)
    }

    /// A leased secret: renew it when it is due; a lease that cannot be renewed, or whose renewal
    /// comes back short of what was asked (the max TTL is near), is a change.
    async fn check_lease(&self, clock: &LeaseClock, now: Instant) -> Result<Verdict, FetchError> {
        if now < clock.due() {
            return Ok(Verdict::Same);
        }
        if !clock.lease.renewable {
            return Ok(Verdict::Changed(
                "lease is not renewable and nears its end; fetching new credentials".to_owned(),
                None,
            ));
        }
        match self
            .backends
            .vault()?
            .renew(&clock.lease, clock.issued_ttl)
            .await
        {
            Ok(renewed) if renewed.duration_secs + 1 >= clock.issued_ttl => {
                Ok(Verdict::Renewed(renewed))
            }
            Ok(_) => Ok(Verdict::Changed(
                "lease nears its max TTL; fetching new credentials".to_owned(),
                None,
            )),
            Err(error @ FetchError::Unreachable { .. }) => Err(error),
            Err(error) => Ok(Verdict::Changed(
                format!("lease cannot be renewed ({error}); fetching new credentials"),
                None,
            )),
        }
    }

    /// Resolves the changed secrets again and does what `--on-change` says when a variable's
    /// value differs.
    async fn act(&mut self, changed: BTreeSet<FetchKey>) -> Result<(), String> {
        let partial = resolve_only(
            &self.config,
            &self.backends,
            |k| changed.contains(k),
            &self.pins,
        )
        .await;
        if let Some(failure) = self.reject_if_failed(&partial).await {
            return Err(failure);
        }
        let differing: Vec<&str> = partial
            .outcomes
            .iter()
            .filter(|o| {
                let digest = o.result.as_ref().ok().map(|v| v.keyed_digest());
                digest.as_ref() != self.variable_digests.get(&o.name)
            })
            .map(|o| o.name.as_str())
            .collect();
        if differing.is_empty() {
            tracing::info!("the secrets changed but no variable's value did; nothing to do");
            self.remember(&partial);
            return Ok(());
        }
        tracing::info!(variables = ?differing, action = ?self.options.on_change, "values changed");
        match self.options.on_change.clone() {
            OnChange::None => self.adopt(&partial),
            OnChange::Exit => {
                self.adopt(&partial);
                let _ = self.control.send(Control::Exit(EXIT_ON_CHANGE));
            }
            OnChange::Signal(sig) => {
                if let Some(files) = &self.files {
                    let by_name = self.config.by_name();
                    for outcome in &partial.outcomes {
                        if let (Ok(value), Some(true)) = (
                            &outcome.result,
                            by_name.get(outcome.name.as_str()).map(|v| v.file),
                        ) {
                            files
                                .write(&outcome.name, value.expose().as_bytes())
                                .map_err(|e| format!("cannot rewrite the secret file: {e}"))?;
                        }
                    }
                }
                self.adopt(&partial);
                let _ = self.control.send(Control::Signal(sig));
            }
            OnChange::Restart => {
                // The unchanged values were never kept: resolve everything afresh.
                self.revoke(&partial.leases()).await;
                let full = resolve_only(&self.config, &self.backends, |_| true, &self.pins).await;
                if let Some(failure) = self.reject_if_failed(&full).await {
                    return Err(failure);
                }
                let environment =
                    ChildEnvironment::build(&self.config, &full, self.files.as_deref())
                        .map_err(|e| format!("cannot build the environment: {e}"))?;
                let (started, restarted) = oneshot::channel();
                let _ = self.control.send(Control::Restart {
                    environment,
                    started,
                });
                let _ = restarted.await;
                self.remember(&full);
                let old = std::mem::replace(&mut *self.held.lock().expect("lock"), full.leases());
                self.revoke(&old).await;
            }
        }
        Ok(())
    }

    /// When a variable of `resolution` failed: revokes the leases it obtained and says which
    /// variable failed and why (`NAME (REF): reason`).
    async fn reject_if_failed(&self, resolution: &Resolution) -> Option<String> {
        let (failure, reason) = resolution
            .outcomes
            .iter()
            .find_map(|o| Some((o, o.result.as_ref().err()?)))?;
        self.revoke(&resolution.leases()).await;
        Some(format!(
            "{} ({}): {reason}",
            failure.name, failure.reference
        ))
    }

    /// Takes a partial resolution as what the command now has: remembers its values and holds its
    /// leases. The leases they replace are revoked after the stop timeout: the command was only
    /// signalled (or not told at all) and may still be using the old credentials, so it gets the
    /// time it would get to stop. Until then they stay held, so an exit before the grace ends
    /// revokes them too.
    fn adopt(&mut self, partial: &Resolution) {
        // Before `remember`, which puts the new leases in their place.
        let replaced: Vec<Lease> = partial
            .fetched
            .iter()
            .filter(|f| f.lease.is_some())
            .filter_map(|f| self.leases.get(&f.key).map(|c| c.lease.clone()))
            .collect();
        self.remember(partial);
        self.held.lock().expect("lock").extend(partial.leases());
        if replaced.is_empty() {
            return;
        }
        let grace = self.config.stop.stop_timeout;
        tracing::info!(
            leases = replaced.len(),
            ?grace,
            "revoking the replaced leases after the stop timeout"
        );
        let (held, backends, revoke) = (
            Arc::clone(&self.held),
            Arc::clone(&self.backends),
            self.config.revoke,
        );
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if revoke {
                revoke_all(&backends, &replaced).await;
            }
            held.lock().expect("lock").retain(|l| !replaced.contains(l));
        });
    }

    async fn revoke(&self, leases: &[Lease]) {
        if !self.config.revoke {
            return;
        }
        revoke_all(&self.backends, leases).await;
    }
}

/// Revokes leases, logging (not failing) when one cannot be.
pub async fn revoke_all(backends: &Backends, leases: &[Lease]) {
    let Ok(vault) = backends.vault() else { return };
    for lease in leases {
        match vault.revoke(lease).await {
            Ok(()) => tracing::info!(lease = %lease.id, "revoked lease"),
            Err(error) => tracing::warn!(lease = %lease.id, %error, "cannot revoke lease"),
        }
    }
}

enum Verdict {
    Same,
    Renewed(Lease),
    /// Changed: why, and for AWS the version id the followed stage points at now.
    Changed(String, Option<String>),
}

/// `interval` ± 10%.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// Exponential backoff from 1 s (or the interval, when shorter), with full jitter, capped at the
/// interval.
fn backoff(failures: u32, interval: Duration) -> Duration {
    let base = Duration::from_secs(1).min(interval);
    let ceiling = base
        .saturating_mul(2u32.saturating_pow(failures.min(20)))
        .min(interval);
    ceiling.mul_f64(0.5 + fastrand::f64() * 0.5)
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
    fn jitter_stays_within_ten_percent() {
        let interval = Duration::from_secs(300);
        for _ in 0..1000 {
            let d = jittered(interval);
            assert!(d >= Duration::from_secs(270) && d <= Duration::from_secs(330));
        }
    }

    #[test]
    fn backoff_grows_and_is_capped_by_the_interval() {
        let interval = Duration::from_secs(60);
        assert!(backoff(1, interval) <= Duration::from_secs(2));
        for failures in 1..40 {
            assert!(backoff(failures, interval) <= interval);
        }
        assert!(backoff(10, interval) >= Duration::from_secs(30));
        assert!(backoff(3, Duration::from_millis(200)) <= Duration::from_millis(200));
    }
}
