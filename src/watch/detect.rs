//! Detecting a change without keeping values (see the module doc of [`crate::watch`]): which
//! secrets a poll asks about and how ([`super::schedule`]), the ListSecrets sweep, the checks per
//! kind of secret, and what the watcher records of their answers.

use std::collections::{BTreeSet, HashMap};
use std::time::SystemTime;

use futures::future::join_all;
use tokio::time::Instant;

use super::leases::LeaseClock;
use super::{Cause, Watcher, schedule};
use crate::provider::aws::{AwsRequest, RotationSchedule, SecretState};
use crate::provider::vault::VaultRequest;
use crate::provider::{DocumentKind, FetchError, Lease};
use crate::resolve::{FetchKey, Fetched};
use crate::sanitize::{one_line, redacted};

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

/// One check's answer: the secret, what was found, the rotation schedule seen (AWS), and why it
/// was checked this poll (for the log line of a change).
type CheckResult = (
    FetchKey,
    Result<Verdict, FetchError>,
    Option<RotationSchedule>,
    &'static str,
);

impl Watcher {
    /// How this poll checks each watched AWS secret without a lease (see [`schedule`]).
    fn plan(&self, forced: bool, sweeping: bool) -> HashMap<FetchKey, schedule::Check> {
        let Some(options) = &self.context.config.watch else {
            return HashMap::new();
        };
        let now = SystemTime::now();
        self.seen
            .watched
            .keys()
            .filter(|key| {
                matches!(key, FetchKey::Aws(_)) && !self.seen.lease_clocks.contains_key(key)
            })
            .map(|key| {
                let check = match schedule::how_to_check(
                    self.seen.schedules.get(key),
                    now,
                    options.interval,
                    sweeping,
                    forced,
                ) {
                    schedule::Check::Sweep if self.seen.crowded.contains(key) => {
                        schedule::Check::Describe
                    }
                    check => check,
                };
                (key.clone(), check)
            })
            .collect()
    }

    /// This poll's plan, after the sweep (when one is due) answered for the quiet AWS secrets it
    /// found unchanged; those answers.
    async fn plan_and_sweep(
        &mut self,
        forced: bool,
        sweeping: bool,
        now: Instant,
    ) -> (
        HashMap<FetchKey, schedule::Check>,
        HashMap<FetchKey, Option<(Verdict, RotationSchedule)>>,
    ) {
        let mut plan = self.plan(forced, sweeping);
        if !sweeping {
            return (plan, HashMap::new());
        }
        self.seen.last_sweep = now;
        let swept = self.sweep(&plan).await;
        // What the sweep did not account for is described in this same poll (and its change is
        // the sweep's: `swept` holds it as `None`).
        let mut swept: HashMap<FetchKey, Option<(Verdict, RotationSchedule)>> = swept
            .into_iter()
            .map(|(key, answer)| (key, Some(answer)))
            .collect();
        for (key, check) in &mut plan {
            if *check == schedule::Check::Sweep && !swept.contains_key(key) {
                *check = schedule::Check::Describe;
                swept.insert(key.clone(), None);
            }
        }
        (plan, swept)
    }

    /// The watched secrets that changed; and how many checks failed. A recheck (`cause`) asks
    /// for every secret, whatever its schedule.
    pub(super) async fn detect(&mut self, cause: Cause) -> (BTreeSet<FetchKey>, usize) {
        let forced = cause.forced();
        let now = Instant::now();
        let sweeping = !forced
            && self.context.config.watch.as_ref().is_some_and(|options| {
                schedule::sweep_due(self.seen.last_sweep, now, options.interval, options.sweep)
            });
        let (plan, swept) = self.plan_and_sweep(forced, sweeping, now).await;
        let described = plan
            .values()
            .filter(|c| **c == schedule::Check::Describe)
            .count();
        tracing::debug!(
            forced,
            sweeping,
            described,
            swept = swept.values().filter(|answer| answer.is_some()).count(),
            "aws: checks this poll"
        );

        let this = &*self;
        let (plan, swept_keys) = (&plan, &swept);
        let checks = this.seen.watched.values().filter_map(|fetched| {
            let check = plan.get(&fetched.key).copied();
            // Skipped this poll, or answered by the sweep.
            if matches!(check, Some(schedule::Check::Skip | schedule::Check::Sweep)) {
                return None;
            }
            Some(async move {
                let (verdict, schedule, why) = match this.seen.lease_clocks.get(&fetched.key) {
                    Some(clock) => (this.check_lease(clock, now, forced).await, None, "lease"),
                    None => {
                        let (verdict, schedule) = this.check_unleased(fetched).await;
                        let why = if forced {
                            cause.name()
                        } else if swept_keys.contains_key(&fetched.key) {
                            "sweep"
                        } else {
                            "poll"
                        };
                        (verdict, schedule, why)
                    }
                };
                (fetched.key.clone(), verdict, schedule, why)
            })
        });
        let mut results = join_all(checks).await;
        results.extend(swept.into_iter().filter_map(|(key, answer)| {
            let (verdict, schedule) = answer?;
            Some((key, Ok(verdict), Some(schedule), "sweep"))
        }));
        self.record(results)
    }

    /// Records what a poll's checks found (schedules, renewed leases, pins, denials); the
    /// secrets that changed, and how many checks failed.
    fn record(&mut self, results: Vec<CheckResult>) -> (BTreeSet<FetchKey>, usize) {
        let mut changed = BTreeSet::new();
        let mut errors = 0;
        for (key, result, schedule, cause) in results {
            if let Some(schedule) = schedule {
                self.seen.schedules.insert(key.clone(), schedule);
            }
            if result.is_ok() {
                self.seen.denied.remove(&key);
            }
            match (key, result) {
                (key, Ok(Verdict::Same)) => tracing::debug!(secret = %key, "no change"),
                (key, Ok(Verdict::Renewed(lease))) => self.renewed(&key, lease),
                (
                    key,
                    Ok(Verdict::Changed {
                        why,
                        version_id,
                        dead,
                    }),
                ) => {
                    tracing::info!(target: "envoke::change", secret = %key, cause, "{why}");
                    if dead {
                        self.seen.dead.insert(key.clone());
                    }
                    if let Some(version_id) = version_id {
                        self.seen.pins.insert(key.clone(), version_id);
                    }
                    changed.insert(key);
                }
                (key, Err(error @ FetchError::AccessDenied(_))) => {
                    // A denial does not go away by itself: say it once, loudly, with what is
                    // needed; keep retrying (with backoff) in case the policy is fixed.
                    if self.seen.denied.insert(key.clone()) {
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

    /// A lease renewed: audited, and its clock restarted.
    fn renewed(&mut self, key: &FetchKey, lease: Lease) {
        tracing::info!(
            target: "envoke::audit",
            event = "vault.lease.renew",
            secret = redacted(&key.to_string()).as_str(),
            lease = one_line(&lease.id).as_str(),
            ttl = lease.duration_secs,
            identity = self.context.backends.vault().map(|v| v.identity()).unwrap_or_default().as_str(),
            "lease renewed"
        );
        if let Some(clock) = self.seen.lease_clocks.get_mut(key) {
            clock.lease = lease;
            clock.since = Instant::now();
        }
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
        let Ok(aws) = self.context.backends.aws() else {
            return HashMap::new();
        };
        let listed = aws.list(&requests).await;
        for request in listed.crowded {
            tracing::info!(
                secret = %FetchKey::Aws(request.clone()),
                "ListSecrets finds too many other secrets by this name to find this one; \
                 it is described at each sweep instead"
            );
            self.seen.crowded.insert(FetchKey::Aws(request));
        }
        self.report_list_errors(listed.errors);
        let mut swept = HashMap::new();
        for (request, state) in listed.states {
            let key = FetchKey::Aws(request);
            let Some(fetched) = self.seen.watched.get(&key) else {
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

    /// Says why ListSecrets failed; a denial loudly once (with the grant it needs), then quietly.
    fn report_list_errors(&mut self, errors: Vec<FetchError>) {
        for error in errors {
            match error {
                FetchError::AccessDenied(_) if !self.seen.said_list_denied => {
                    self.seen.said_list_denied = true;
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
    }

    /// A secret without a lease, checked the way its kind of document allows; for AWS, with
    /// the rotation schedule seen.
    async fn check_unleased(
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
        let state = self.context.backends.aws()?.describe(request).await?;
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
            .context
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
            .context
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
            .context
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

/// A denial, completed with the permission that watching needs.
fn needs(error: FetchError, permission: String) -> FetchError {
    match error {
        FetchError::AccessDenied(reason) => {
            FetchError::AccessDenied(format!("{reason} (watching needs {permission})"))
        }
        error => error,
    }
}
