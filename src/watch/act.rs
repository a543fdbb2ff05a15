//! Acting on a change: the changed secrets are resolved again and compared variable by
//! variable; when a value differs, `--on-change` decides (restart, signal, exit or none), after
//! the splay. The leases the command's credentials hold move through the [`LeaseLedger`]: new
//! ones are held before anything can stop envoke, replaced ones are released after a grace.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Watcher;
use super::leases::LeaseClock;
use crate::config::VariableProblem;
use crate::config::watch::OnChange;
use crate::launch::ChildEnvironment;
use crate::launch::files::write_if_file;
use crate::launch::supervise::Control;
use crate::provider::Lease;
use crate::resolve::{FetchKey, Resolution, resolve_only};

/// Why a change could not be acted on; the child keeps running what it has.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// A changed secret no longer resolves.
    #[error("{0}")]
    Unresolved(VariableProblem),
    /// `signal:SIG`: a secret file could not be rewritten.
    #[error("cannot rewrite the secret file: {0}")]
    RewriteFile(std::io::Error),
    /// `restart`: the new environment could not be built.
    #[error("cannot build the environment: {0}")]
    Environment(crate::launch::EnvironmentError),
}

impl Watcher {
    /// Resolves the changed secrets again and does what `--on-change` says when a variable's
    /// value differs.
    pub(super) async fn act(
        &mut self,
        changed: BTreeSet<FetchKey>,
        on_change: &OnChange,
    ) -> Result<(), ActError> {
        let dead = std::mem::take(&mut self.seen.dead);
        let partial = resolve_only(
            &self.context.config,
            &self.context.backends,
            |k| changed.contains(k),
            &self.seen.pins,
        )
        .await;
        self.reject_if_failed(&partial).await?;
        let differing: Vec<&str> = partial
            .outcomes
            .iter()
            .filter(|o| {
                let digest = o.result.as_ref().ok().map(|v| v.keyed_digest());
                digest.as_ref() != self.seen.variable_digests.get(&o.name)
            })
            .map(|o| o.name.as_str())
            .collect();
        if differing.is_empty() {
            tracing::info!(target: "envoke::change", "the secrets changed but no variable's value did; nothing to do");
            self.remember(&partial);
            return Ok(());
        }
        tracing::info!(target: "envoke::change", variables = ?differing, action = ?on_change, "values changed");
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
                partial.audit(&self.context.backends, "none", None);
            }
            OnChange::Exit => {
                partial.audit(&self.context.backends, "exit", None);
                self.exit(&partial, splay).await;
            }
            OnChange::Signal(sig) => {
                self.signal(*sig, &partial)?;
                partial.audit(
                    &self.context.backends,
                    "signal",
                    Some(pid_number(self.supervisor.pid)),
                );
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
        self.context.leases.hold(partial.leases());
        let _ = self.splay(splay).await;
        self.remember(partial);
        let _ = self.supervisor.control.send(Control::Exit);
    }

    /// The longest splay before acting on `changed` (see [`splay_cap`]), the cap logged.
    fn splay_limit(&self, changed: &BTreeSet<FetchKey>) -> Duration {
        let Some(options) = &self.context.config.watch else {
            return Duration::ZERO;
        };
        let (limit, why) = splay_cap(
            options.splay,
            changed,
            &self.seen.lease_clocks,
            Instant::now(),
        );
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
            target: "envoke::change",
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            splay = ?limit,
            "waiting a random delay before acting on the change (--splay)"
        );
        tokio::time::sleep(delay).await;
        true
    }

    /// `--on-change signal:SIG`: rewrite the secret files the change touched, then signal. With
    /// `--mask`, the new values are masked before the child can read them.
    fn signal(&mut self, sig: Signal, partial: &Resolution) -> Result<(), ActError> {
        if let Some(mask) = &self.context.mask {
            mask.update(partial.outcomes.iter().filter_map(|o| {
                let value = o.result.as_ref().ok()?;
                Some((o.name.as_str(), value.expose().as_bytes()))
            }));
        }
        let by_name = self.context.config.by_name();
        for outcome in &partial.outcomes {
            if let (Ok(value), Some(variable)) =
                (&outcome.result, by_name.get(outcome.name.as_str()))
            {
                write_if_file(
                    self.context.files.as_deref(),
                    variable,
                    value.expose().as_bytes(),
                )
                .map_err(ActError::RewriteFile)?;
            }
        }
        self.adopt(partial);
        let _ = self.supervisor.control.send(Control::Signal(sig));
        Ok(())
    }

    /// `--on-change restart`: resolve the whole environment afresh (the unchanged values were
    /// never kept) and have the supervisor restart the child with it.
    async fn restart(&mut self, partial: &Resolution, splay: Duration) -> Result<(), ActError> {
        self.revoke(&partial.leases()).await;
        // After the revocation, so that a stop during the wait leaves nothing unheld; before
        // the resolution, so that the command starts with what is current after it. The pins
        // are what DescribeSecret saw before the wait: a secret that rotated again during it
        // would start the command on a superseded version, so its followed stage is fetched
        // afresh (GetSecretValue returns the version id it resolved, and that is remembered).
        if self.splay(splay).await {
            self.seen.pins.clear();
        }
        let full = resolve_only(
            &self.context.config,
            &self.context.backends,
            |_| true,
            &self.seen.pins,
        )
        .await;
        self.reject_if_failed(&full).await?;
        let environment =
            ChildEnvironment::build(&self.context.config, &full, self.context.files.as_deref())
                .map_err(ActError::Environment)?;
        let (started, restarted) = oneshot::channel();
        let _ = self.supervisor.control.send(Control::Restart {
            environment,
            started,
        });
        let Ok(pid) = restarted.await else {
            // No restart: envoke is being stopped, and the old command may still be stopping on
            // the old credentials. Everything stays held, to be revoked once it has exited.
            self.context.leases.hold(full.leases());
            return Ok(());
        };
        self.supervisor.pid = pid;
        tracing::info!(target: "envoke::change", pid = pid_number(pid), "restarted the command with the new values");
        full.audit(&self.context.backends, "restart", Some(pid_number(pid)));
        self.remember(&full);
        let old = self.context.leases.replace_all(full.leases());
        self.revoke(&old).await;
        Ok(())
    }

    /// When a variable of `resolution` failed: revokes the leases it obtained and says which
    /// variable failed and why.
    async fn reject_if_failed(&self, resolution: &Resolution) -> Result<(), ActError> {
        let Some(failure) = resolution.failures().into_iter().next() else {
            return Ok(());
        };
        self.revoke(&resolution.leases()).await;
        Err(ActError::Unresolved(failure))
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
            .filter_map(|f| self.seen.lease_clocks.get(&f.key).map(|c| c.lease.clone()))
            .collect();
        self.remember(partial);
        self.context.leases.hold(partial.leases());
        if replaced.is_empty() {
            return;
        }
        let grace = self.context.config.stop.stop_timeout;
        tracing::info!(
            leases = replaced.len(),
            ?grace,
            "revoking the replaced leases after the stop timeout"
        );
        let backends = self
            .context
            .config
            .revoke
            .then(|| Arc::clone(&self.context.backends));
        self.context.leases.release_after(replaced, grace, backends);
    }

    async fn revoke(&self, leases: &[Lease]) {
        if !self.context.config.revoke {
            return;
        }
        self.context.backends.revoke_all(leases).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::vault::VaultRequest;

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
}
