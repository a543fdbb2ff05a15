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

mod schedule;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use futures::future::join_all;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Config;
use crate::config::watch::{MAX_DURATION, OnChange};
use crate::launch::ChildEnvironment;
use crate::launch::files::{SecretFiles, write_if_file};
use crate::launch::mask::OutputMask;
use crate::launch::supervise::Control;
use crate::provider::aws::{AwsRequest, RotationSchedule, SecretState};
use crate::provider::vault::VaultRequest;
use crate::provider::{Backends, DocumentKind, FetchError, Lease};
use crate::resolve::{FetchKey, Fetched, Resolution, resolve_only};
use crate::sanitize::{one_line, redacted};
use crate::secret::Digest;

/// The Vault leases envoke holds, shared with whoever revokes them at exit.
pub type HeldLeases = Arc<Mutex<Vec<Lease>>>;

/// The held leases, also after a panic elsewhere poisoned the lock (a list of ids stays valid).
pub fn lock(held: &HeldLeases) -> MutexGuard<'_, Vec<Lease>> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

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
        let two_thirds = Duration::from_millis(self.lease.duration_secs.saturating_mul(2000) / 3);
        self.since.checked_add(two_thirds).unwrap_or(self.since)
    }
}

/// The watcher: runs as its own task, talks to the supervisor through [`Control`] messages.
pub struct Watcher {
    /// What to resolve again, how to build the environment, and how to watch (`config.watch`).
    config: Arc<Config>,
    backends: Arc<Backends>,
    watched: BTreeMap<FetchKey, Fetched>,
    leases: BTreeMap<FetchKey, LeaseClock>,
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
    /// Woken by the recheck signal.
    recheck: Arc<Notify>,
    files: Option<Arc<SecretFiles>>,
    held: HeldLeases,
    /// With `--mask`: told of values that reach the child without a restart (`signal:SIG`).
    mask: Option<Arc<OutputMask>>,
    control: mpsc::UnboundedSender<Control>,
    /// The running child's PID, for the audit events.
    child: Pid,
}

/// The supervised child, as the watcher reaches it.
pub struct Supervised {
    /// Where the watcher's requests go.
    pub control: mpsc::UnboundedSender<Control>,
    /// The child the supervisor started first.
    pub pid: Pid,
    /// Notified when the recheck signal arrives.
    pub recheck: Arc<Notify>,
}

/// What one check found.
enum Verdict {
    Same,
    Renewed(Lease),
    Changed {
        why: String,
        /// For AWS, the version id the followed stage points at now.
        version_id: Option<String>,
        /// The credentials the command has are dead already (a lease that cannot be renewed):
        /// no splay.
        dead: bool,
    },
}

impl Verdict {
    fn changed(why: impl Into<String>) -> Verdict {
        Verdict::Changed {
            why: why.into(),
            version_id: None,
            dead: false,
        }
    }
}

impl Watcher {
    /// Starts watching when `config.watch` says so, remembering what the first launch used
    /// (versions, hashes, leases; no values).
    pub fn start(
        config: Arc<Config>,
        backends: Arc<Backends>,
        resolution: &Resolution,
        files: Option<Arc<SecretFiles>>,
        held: HeldLeases,
        mask: Option<Arc<OutputMask>>,
        child: Supervised,
    ) -> Option<JoinHandle<()>> {
        let options = config.watch.as_ref()?;
        tracing::info!(
            interval = ?options.interval,
            sweep = ?options.sweep,
            splay = ?options.splay,
            recheck_signal = options.recheck_signal.map(|s| s.as_str()),
            on_change = ?options.on_change,
            "watching for changes"
        );
        let mut watcher = Watcher {
            config,
            backends,
            watched: BTreeMap::new(),
            leases: BTreeMap::new(),
            variable_digests: BTreeMap::new(),
            pins: HashMap::new(),
            denied: BTreeSet::new(),
            dead: BTreeSet::new(),
            schedules: HashMap::new(),
            last_sweep: Instant::now(),
            said_list_denied: false,
            crowded: BTreeSet::new(),
            recheck: child.recheck,
            files,
            held,
            mask,
            control: child.control,
            child: child.pid,
        };
        watcher.remember(resolution);
        Some(tokio::spawn(watcher.run()))
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
    async fn run(mut self) {
        let config = Arc::clone(&self.config);
        let Some(options) = &config.watch else {
            return;
        };
        let mut failures: u32 = 0;
        // When the last forced check began.
        let mut last_forced: Option<Instant> = None;
        loop {
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
                .leases
                .values()
                .map(LeaseClock::due)
                .filter(|due| failures == 0 || *due > now)
                .min();
            if let Some(due) = next_due {
                wake = wake.min(due);
            }
            let recheck = Arc::clone(&self.recheck);
            // A recheck signal makes the next check a forced one, and brings it forward as far
            // as `recheck_at` allows; more signals until then are the same request.
            let mut rechecked = false;
            let mut at = wake;
            let forced = loop {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => break rechecked,
                    // Signals while one waits for its turn are absorbed into it.
                    () = recheck.notified() => {
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
            };
            if forced {
                last_forced = Some(Instant::now());
            }
            let (mut changed, errors) = self.detect(forced).await;
            if !changed.is_empty() {
                // Coalesce what else changes within the settle window.
                tokio::time::sleep(options.settle).await;
                let (more, _) = self.detect(false).await;
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

    /// How this poll checks each watched AWS secret without a lease (see [`schedule`]).
    fn plan(&self, forced: bool, sweeping: bool) -> HashMap<FetchKey, schedule::Check> {
        let Some(options) = &self.config.watch else {
            return HashMap::new();
        };
        let now = SystemTime::now();
        self.watched
            .keys()
            .filter(|key| matches!(key, FetchKey::Aws(_)) && !self.leases.contains_key(key))
            .map(|key| {
                let check = match schedule::check(
                    self.schedules.get(key),
                    now,
                    options.interval,
                    sweeping,
                    forced,
                ) {
                    schedule::Check::Sweep if self.crowded.contains(key) => {
                        schedule::Check::Describe
                    }
                    check => check,
                };
                (key.clone(), check)
            })
            .collect()
    }

    /// The watched secrets that changed; and how many checks failed. `forced`: the recheck
    /// signal asked for every secret, whatever its schedule.
    async fn detect(&mut self, forced: bool) -> (BTreeSet<FetchKey>, usize) {
        let now = Instant::now();
        let sweeping = !forced
            && self.config.watch.as_ref().is_some_and(|options| {
                schedule::sweep_due(self.last_sweep, now, options.interval, options.sweep)
            });
        let mut plan = self.plan(forced, sweeping);
        let mut swept = HashMap::new();
        if sweeping {
            self.last_sweep = now;
            swept = self.sweep(&plan).await;
            // What the sweep did not account for is described in this same poll.
            for (key, check) in &mut plan {
                if *check == schedule::Check::Sweep && !swept.contains_key(key) {
                    *check = schedule::Check::Describe;
                }
            }
        }
        let described = plan
            .values()
            .filter(|c| **c == schedule::Check::Describe)
            .count();
        tracing::debug!(
            forced,
            sweeping,
            described,
            swept = swept.len(),
            "aws: checks this poll"
        );

        let this = &*self;
        let plan = &plan;
        let checks = this.watched.values().filter_map(|fetched| {
            let check = plan.get(&fetched.key).copied();
            // Skipped this poll, or answered by the sweep.
            if matches!(check, Some(schedule::Check::Skip | schedule::Check::Sweep)) {
                return None;
            }
            Some(async move {
                let (verdict, schedule) = match this.leases.get(&fetched.key) {
                    Some(clock) => (this.check_lease(clock, now, forced).await, None),
                    None => this.check(fetched).await,
                };
                (fetched.key.clone(), verdict, schedule)
            })
        });
        let mut results = join_all(checks).await;
        results.extend(
            swept
                .into_iter()
                .map(|(key, (verdict, schedule))| (key, Ok(verdict), Some(schedule))),
        );
        let mut changed = BTreeSet::new();
        let mut errors = 0;
        for (key, result, schedule) in results {
            if let Some(schedule) = schedule {
                self.schedules.insert(key.clone(), schedule);
            }
            if result.is_ok() {
                self.denied.remove(&key);
            }
            match (key, result) {
                (key, Ok(Verdict::Same)) => tracing::debug!(secret = %key, "no change"),
                (key, Ok(Verdict::Renewed(lease))) => {
                    tracing::info!(
                        target: "envoke::audit",
                        event = "vault.lease.renew",
                        secret = redacted(&key.to_string()).as_str(),
                        lease = one_line(&lease.id).as_str(),
                        ttl = lease.duration_secs,
                        identity = self.backends.vault().map(|v| v.identity()).unwrap_or_default().as_str(),
                        "lease renewed"
                    );
                    if let Some(clock) = self.leases.get_mut(&key) {
                        clock.lease = lease;
                        clock.since = Instant::now();
                    }
                }
                (
                    key,
                    Ok(Verdict::Changed {
                        why,
                        version_id,
                        dead,
                    }),
                ) => {
                    tracing::info!(secret = %key, "{why}");
                    if dead {
                        self.dead.insert(key.clone());
                    }
                    if let Some(version_id) = version_id {
                        self.pins.insert(key.clone(), version_id);
                    }
                    changed.insert(key);
                }
                (key, Err(error @ FetchError::AccessDenied(_))) => {
                    // A denial does not go away by itself: say it once, loudly, with what is
                    // needed; keep retrying (with backoff) in case the policy is fixed.
                    if self.denied.insert(key.clone()) {
                        tracing::error!(secret = %key, %error, "cannot watch for changes: permission denied; retrying with backoff");
                    } else {
                        tracing::debug!(secret = %key, %error, "still denied");
                    }
                    errors += 1;
                }
                (key, Err(error)) => {
                    tracing::warn!(secret = %key, %error, "cannot check for a change; will retry");
                    errors += 1;
                }
            }
        }
        (changed, errors)
    }

    /// The sweep: the quiet AWS secrets of `plan`, checked with ListSecrets; those it finds
    /// unchanged. A secret missing from the answer, or that it shows changed, is described by
    /// the caller; a failed ListSecrets is logged, never an error of its own (the
    /// DescribeSecret that replaces it may be one).
    async fn sweep(
        &mut self,
        plan: &HashMap<FetchKey, schedule::Check>,
    ) -> HashMap<FetchKey, (Verdict, RotationSchedule)> {
        let requests: Vec<AwsRequest> = plan
            .iter()
            .filter(|(_, check)| **check == schedule::Check::Sweep)
            .filter_map(|(key, _)| match key {
                FetchKey::Aws(request) => Some(request.clone()),
                FetchKey::Vault(_) => None,
            })
            .collect();
        if requests.is_empty() {
            return HashMap::new();
        }
        let Ok(aws) = self.backends.aws() else {
            return HashMap::new();
        };
        let listed = aws.list(&requests).await;
        for request in listed.crowded {
            tracing::info!(
                secret = %FetchKey::Aws(request.clone()),
                "ListSecrets finds too many other secrets by this name to find this one; \
                 it is described at each sweep instead"
            );
            self.crowded.insert(FetchKey::Aws(request));
        }
        for error in listed.errors {
            match error {
                FetchError::AccessDenied(_) if !self.said_list_denied => {
                    self.said_list_denied = true;
                    tracing::warn!(
                        %error,
                        "ListSecrets is denied: the quiet secrets are checked with one \
                         DescribeSecret each per sweep instead of one ListSecrets per 10; grant \
                         secretsmanager:ListSecrets on Resource \"*\" (envoke policy --aws --watch)"
                    );
                }
                FetchError::AccessDenied(_) => tracing::debug!(%error, "ListSecrets still denied"),
                error => tracing::warn!(
                    %error,
                    "ListSecrets failed; describing the quiet secrets one by one this time"
                ),
            }
        }
        let mut swept = HashMap::new();
        for (request, state) in listed.states {
            let key = FetchKey::Aws(request);
            let Some(fetched) = self.watched.get(&key) else {
                continue;
            };
            match stage_verdict(fetched, &key, &state) {
                verdict @ Verdict::Same => {
                    swept.insert(key, (verdict, state.schedule));
                }
                // ListSecrets may lag by minutes: a version it shows may be older than the one
                // the command has. Left out of the answer, the secret is described in this
                // poll, and that answer is the one acted on.
                _ => tracing::info!(
                    secret = %key,
                    "ListSecrets shows another version; confirming with DescribeSecret"
                ),
            }
        }
        swept
    }

    /// A secret without a lease, checked the way its kind of document allows; for AWS, with
    /// the rotation schedule seen.
    async fn check(
        &self,
        fetched: &Fetched,
    ) -> (Result<Verdict, FetchError>, Option<RotationSchedule>) {
        match (&fetched.kind, &fetched.key) {
            (DocumentKind::Aws, FetchKey::Aws(request)) => {
                match self.check_aws_stage(request, fetched).await {
                    Ok((verdict, schedule)) => (Ok(verdict), Some(schedule)),
                    Err(error) => (Err(error), None),
                }
            }
            (DocumentKind::VaultKv2 { mount, rest }, FetchKey::Vault(_)) => {
                (self.check_kv2_metadata(mount, rest, fetched).await, None)
            }
            (DocumentKind::VaultKv1 | DocumentKind::VaultOther, FetchKey::Vault(request)) => {
                (self.check_content(request, fetched).await, None)
            }
            (kind, key) => (
                Err(FetchError::Other(format!(
                    "internal error: {key} was fetched as a {kind:?} document, which cannot be watched"
                ))),
                None,
            ),
        }
    }

    /// AWS: does the stage we follow still point at the version we have (DescribeSecret)?
    async fn check_aws_stage(
        &self,
        request: &AwsRequest,
        fetched: &Fetched,
    ) -> Result<(Verdict, RotationSchedule), FetchError> {
        // A denial names secretsmanager:DescribeSecret already.
        let state = self.backends.aws()?.describe(request).await?;
        let verdict = stage_verdict(fetched, &fetched.key, &state);
        Ok((verdict, state.schedule))
    }

    /// Vault KV v2: the metadata's `current_version`.
    async fn check_kv2_metadata(
        &self,
        mount: &str,
        rest: &str,
        fetched: &Fetched,
    ) -> Result<Verdict, FetchError> {
        let current = self
            .backends
            .vault()?
            .kv2_current_version(mount, rest)
            .await
            .map_err(|e| needs(e, format!("read on {mount}metadata/{rest}")))?
            .to_string();
        if Some(&current) == fetched.version.as_ref() {
            return Ok(Verdict::Same);
        }
        Ok(Verdict::changed(format!(
            "new version {current} (was {})",
            fetched.version.as_deref().unwrap_or("-")
        )))
    }

    /// No metadata to ask: read the document again and compare keyed hashes; the value is
    /// dropped (zeroized) at once.
    async fn check_content(
        &self,
        request: &VaultRequest,
        fetched: &Fetched,
    ) -> Result<Verdict, FetchError> {
        let document = self
            .backends
            .vault()?
            .read(request)
            .await
            .map_err(|e| needs(e, format!("read on {}", request.path)))?;
        if document.value.keyed_digest() == fetched.digest {
            return Ok(Verdict::Same);
        }
        Ok(Verdict::changed("content changed"))
    }

    /// A leased secret: renew it when it is due, or whenever the recheck signal (`forced`) asks;
    /// a lease that cannot be renewed, or whose renewal comes back short of what was asked (the
    /// max TTL is near), is a change. A renewal is the only way to learn that a lease was revoked
    /// (the incident runbook in docs/rotation.md revokes them, then sends the recheck signal).
    async fn check_lease(
        &self,
        clock: &LeaseClock,
        now: Instant,
        forced: bool,
    ) -> Result<Verdict, FetchError> {
        if now < clock.due() && !forced {
            return Ok(Verdict::Same);
        }
        if !clock.lease.renewable {
            // Nothing to ask about such a lease; a recheck fetches new credentials.
            return Ok(Verdict::changed(if now < clock.due() {
                "recheck signal: the lease is not renewable; fetching new credentials"
            } else {
                "lease is not renewable and nears its end; fetching new credentials"
            }));
        }
        match self
            .backends
            .vault()?
            .renew(&clock.lease, clock.issued_ttl)
            .await
        {
            Ok(renewed) if renewed.duration_secs.saturating_add(1) >= clock.issued_ttl => {
                Ok(Verdict::Renewed(renewed))
            }
            // A recheck before the lease was due: a short renewal only says how long the lease
            // has left (a role whose max TTL is its TTL never renews in full), and the lease is
            // replaced when that falls due, not on every recheck.
            Ok(renewed) if now < clock.due() => Ok(Verdict::Renewed(renewed)),
            Ok(_) => Ok(Verdict::changed(
                "lease nears its max TTL; fetching new credentials",
            )),
            Err(error @ FetchError::Unreachable { .. }) => Err(error),
            Err(error) => Ok(Verdict::Changed {
                why: format!("lease cannot be renewed ({error}); fetching new credentials"),
                version_id: None,
                dead: true,
            }),
        }
    }

    /// Resolves the changed secrets again and does what `--on-change` says when a variable's
    /// value differs.
    async fn act(
        &mut self,
        changed: BTreeSet<FetchKey>,
        on_change: &OnChange,
    ) -> Result<(), String> {
        let dead = std::mem::take(&mut self.dead);
        let partial = resolve_only(
            &self.config,
            &self.backends,
            |k| changed.contains(k),
            &self.pins,
        )
        .await;
        self.reject_if_failed(&partial).await?;
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
        tracing::info!(variables = ?differing, action = ?on_change, "values changed");
        // Before anything replaces the leases the command still uses.
        let splay = if changed.iter().any(|key| dead.contains(key)) {
            tracing::info!("a lease could not be renewed: its credentials are dead; no splay");
            Duration::ZERO
        } else {
            self.splay_limit(&changed)
        };
        match on_change {
            OnChange::None => {
                self.adopt(&partial);
                partial.audit(&self.backends, "none", None);
            }
            OnChange::Exit => {
                partial.audit(&self.backends, "exit", None);
                self.exit(&partial, splay).await;
            }
            OnChange::Signal(sig) => {
                self.signal(*sig, &partial)?;
                partial.audit(&self.backends, "signal", Some(pid_number(self.child)));
            }
            OnChange::Restart => self.restart(&partial, splay).await?,
        }
        Ok(())
    }

    /// `--on-change exit`: the supervisor stops the child, and envoke exits with 75.
    ///
    /// Not [`Watcher::adopt`]: its grace would start before the splay and could revoke the old
    /// leases while the command still runs on them. The old leases stay held, and envoke revokes
    /// everything it holds once the command has stopped.
    async fn exit(&mut self, partial: &Resolution, splay: Duration) {
        // Held first: a stop during the splay revokes them with the rest.
        lock(&self.held).extend(partial.leases());
        let _ = self.splay(splay).await;
        self.remember(partial);
        let _ = self.control.send(Control::Exit);
    }

    /// The longest splay before acting on `changed` (see [`splay_cap`]), the cap logged.
    fn splay_limit(&self, changed: &BTreeSet<FetchKey>) -> Duration {
        let Some(options) = &self.config.watch else {
            return Duration::ZERO;
        };
        let (limit, why) = splay_cap(options.splay, changed, &self.leases, Instant::now());
        if let Some(why) = why {
            tracing::info!(splay = ?options.splay, capped_at = ?limit, "the splay is capped: {why}");
        }
        limit
    }

    /// `--splay`: a uniformly random delay of up to `limit` before a restart or exit. The
    /// supervisor runs on meanwhile: a TERM during the wait stops envoke as usual. Whether it
    /// waited.
    async fn splay(&self, limit: Duration) -> bool {
        if limit.is_zero() {
            return false;
        }
        let delay = limit.mul_f64(fastrand::f64());
        tracing::info!(
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            splay = ?limit,
            "waiting a random delay before acting on the change (--splay)"
        );
        tokio::time::sleep(delay).await;
        true
    }

    /// `--on-change signal:SIG`: rewrite the secret files the change touched, then signal. With
    /// `--mask`, the new values are masked before the child can read them.
    fn signal(&mut self, sig: Signal, partial: &Resolution) -> Result<(), String> {
        if let Some(mask) = &self.mask {
            mask.update(partial.outcomes.iter().filter_map(|o| {
                let value = o.result.as_ref().ok()?;
                Some((o.name.as_str(), value.expose().as_bytes()))
            }));
        }
        let by_name = self.config.by_name();
        for outcome in &partial.outcomes {
            if let (Ok(value), Some(variable)) =
                (&outcome.result, by_name.get(outcome.name.as_str()))
            {
                write_if_file(self.files.as_deref(), variable, value.expose().as_bytes())
                    .map_err(|e| format!("cannot rewrite the secret file: {e}"))?;
            }
        }
        self.adopt(partial);
        let _ = self.control.send(Control::Signal(sig));
        Ok(())
    }

    /// `--on-change restart`: resolve the whole environment afresh (the unchanged values were
    /// never kept) and have the supervisor restart the child with it.
    async fn restart(&mut self, partial: &Resolution, splay: Duration) -> Result<(), String> {
        self.revoke(&partial.leases()).await;
        // After the revocation, so that a stop during the wait leaves nothing unheld; before
        // the resolution, so that the command starts with what is current after it. The pins
        // are what DescribeSecret saw before the wait: a secret that rotated again during it
        // would start the command on a superseded version, so its followed stage is fetched
        // afresh (GetSecretValue returns the version id it resolved, and that is remembered).
        if self.splay(splay).await {
            self.pins.clear();
        }
        let full = resolve_only(&self.config, &self.backends, |_| true, &self.pins).await;
        self.reject_if_failed(&full).await?;
        let environment = ChildEnvironment::build(&self.config, &full, self.files.as_deref())
            .map_err(|e| format!("cannot build the environment: {e}"))?;
        let (started, restarted) = oneshot::channel();
        let _ = self.control.send(Control::Restart {
            environment,
            started,
        });
        let Ok(pid) = restarted.await else {
            // No restart: envoke is being stopped, and the old command may still be stopping on
            // the old credentials. Everything stays held, to be revoked once it has exited.
            lock(&self.held).extend(full.leases());
            return Ok(());
        };
        self.child = pid;
        full.audit(&self.backends, "restart", Some(pid_number(pid)));
        self.remember(&full);
        let old = std::mem::replace(&mut *lock(&self.held), full.leases());
        self.revoke(&old).await;
        Ok(())
    }

    /// When a variable of `resolution` failed: revokes the leases it obtained and says which
    /// variable failed and why.
    async fn reject_if_failed(&self, resolution: &Resolution) -> Result<(), String> {
        let Some(failure) = resolution.failures().into_iter().next() else {
            return Ok(());
        };
        self.revoke(&resolution.leases()).await;
        Err(failure.to_string())
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
        lock(&self.held).extend(partial.leases());
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
                backends.revoke_all(&replaced).await;
            }
            lock(&held).retain(|l| !replaced.contains(l));
        });
    }

    async fn revoke(&self, leases: &[Lease]) {
        if !self.config.revoke {
            return;
        }
        self.backends.revoke_all(leases).await;
    }
}

/// Whether the followed stage of `key` (an AWS secret) still points at the version `fetched`
/// has. Only DescribeSecret's answers are acted on (see [`Watcher::sweep`]).
fn stage_verdict(fetched: &Fetched, key: &FetchKey, state: &SecretState) -> Verdict {
    if state.version == fetched.version {
        return Verdict::Same;
    }
    let stage = match key {
        FetchKey::Aws(request) => request.followed_stage(),
        FetchKey::Vault(_) => "the stage",
    };
    Verdict::Changed {
        why: format!(
            "{stage} moved from version {} to {} (seen by DescribeSecret)",
            fetched.version.as_deref().unwrap_or("-"),
            state.version.as_deref().unwrap_or("-")
        ),
        version_id: state.version.clone(),
        dead: false,
    }
}

/// The longest splay before acting on `changed` at `now`: `splay`, capped at half the time left
/// to a replaced lease (the command uses it until it is restarted), and at the next renewal of
/// any other lease (the watcher renews nothing while it waits). The cap and why, when it caps.
fn splay_cap(
    splay: Duration,
    changed: &BTreeSet<FetchKey>,
    leases: &BTreeMap<FetchKey, LeaseClock>,
    now: Instant,
) -> (Duration, Option<&'static str>) {
    let mut limit = (splay, None);
    for (key, clock) in leases {
        let cap = if changed.contains(key) {
            let ends = clock
                .since
                .checked_add(Duration::from_secs(clock.lease.duration_secs))
                .unwrap_or(clock.since);
            (
                ends.saturating_duration_since(now) / 2,
                "half the time a replaced lease has left",
            )
        } else {
            (
                clock.due().saturating_duration_since(now),
                "the next renewal of a lease the command uses",
            )
        };
        if cap.0 < limit.0 {
            limit = (cap.0, Some(cap.1));
        }
    }
    limit
}

/// A PID as the audit events give it.
fn pid_number(pid: Pid) -> u32 {
    pid.as_raw().unsigned_abs()
}

/// A denial, completed with the permission that watching needs.
fn needs(error: FetchError, permission: String) -> FetchError {
    match error {
        FetchError::AccessDenied(reason) => {
            FetchError::AccessDenied(format!("{reason} (watching needs {permission})"))
        }
        error => error,
    }
}

/// The shortest time between two checks that the recheck signal forces: a loop of signals costs
/// one check per secret every `RECHECK_GAP`, not back-to-back checks.
const RECHECK_GAP: Duration = Duration::from_secs(10);

/// When a recheck signal that arrives at `now` is acted on: at once, unless a forced check began
/// less than [`RECHECK_GAP`] ago (then when the gap ends), or checks are failing (then at the
/// end of the backoff, `wake`, which it does not cut short). Never later than `wake`.
fn recheck_at(now: Instant, last_forced: Option<Instant>, failures: u32, wake: Instant) -> Instant {
    if failures > 0 {
        return wake;
    }
    let gap_ends = last_forced
        .and_then(|last| last.checked_add(RECHECK_GAP))
        .unwrap_or(now);
    gap_ends.max(now).min(wake)
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

    fn leased(path: &str, ttl: u64, since: Instant) -> (FetchKey, LeaseClock) {
        let lease = Lease {
            id: format!("{path}/lease"),
            duration_secs: ttl,
            renewable: true,
        };
        let key = FetchKey::Vault(VaultRequest {
            path: path.to_owned(),
            version: None,
        });
        let mut clock = LeaseClock::new(lease);
        clock.since = since;
        (key, clock)
    }

    #[test]
    fn the_splay_ends_before_any_held_lease_falls_due() {
        let now = Instant::now();
        let hour = Duration::from_secs(3600);
        let (replaced, old) = leased("database/creds/a", 60, now - Duration::from_secs(40));
        let (kept, other) = leased("database/creds/b", 30, now);
        let changed = BTreeSet::from([replaced.clone()]);
        // The replaced lease has 20 s left: 10 s; the other falls due for renewal in 20 s.
        let leases = BTreeMap::from([(replaced.clone(), old.clone())]);
        assert_eq!(
            splay_cap(hour, &changed, &leases, now).0,
            Duration::from_secs(10)
        );
        let leases = BTreeMap::from([(replaced, old), (kept.clone(), other.clone())]);
        assert_eq!(
            splay_cap(hour, &changed, &leases, now).0,
            Duration::from_secs(10)
        );
        // A change of something else: the unchanged lease's renewal caps it alone.
        let leases = BTreeMap::from([(kept, other)]);
        let (cap, why) = splay_cap(hour, &BTreeSet::new(), &leases, now);
        assert_eq!(cap, Duration::from_secs(20));
        assert_eq!(why, Some("the next renewal of a lease the command uses"));
        // A short splay is not capped.
        assert_eq!(
            splay_cap(Duration::from_secs(5), &BTreeSet::new(), &leases, now),
            (Duration::from_secs(5), None)
        );
    }

    #[test]
    fn rechecks_come_at_most_every_gap_and_never_cut_a_backoff() {
        let now = Instant::now();
        let wake = now + Duration::from_secs(300);
        let s = Duration::from_secs;
        // The first, or one after the gap: at once.
        assert_eq!(recheck_at(now, None, 0, wake), now);
        assert_eq!(recheck_at(now, Some(now - s(11)), 0, wake), now);
        // Within the gap: when it ends, unless the poll comes first.
        assert_eq!(recheck_at(now, Some(now - s(4)), 0, wake), now + s(6));
        let soon = now + s(2);
        assert_eq!(recheck_at(now, Some(now - s(4)), 0, soon), soon);
        // Checks failing: the backoff runs its course.
        assert_eq!(recheck_at(now, None, 3, wake), wake);
        assert_eq!(recheck_at(now, Some(now - s(60)), 1, wake), wake);
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
