//! The Vault leases behind the command's credentials: one [`LeaseLedger`] of what envoke holds,
//! shared by `run` (which takes everything at exit and revokes it) and the watcher (which holds
//! the leases of new credentials and releases the ones they replaced); and the [`LeaseClock`]
//! that tells the watcher when a lease is due for renewal.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::provider::{Backends, Lease};

/// The leases envoke holds for the command. Cloning shares the ledger.
#[derive(Debug, Clone, Default)]
pub struct LeaseLedger(Arc<Mutex<Vec<Lease>>>);

impl LeaseLedger {
    /// A ledger holding `leases`.
    pub fn new(leases: Vec<Lease>) -> LeaseLedger {
        LeaseLedger(Arc::new(Mutex::new(leases)))
    }

    /// Holds `leases` too.
    pub fn hold(&self, leases: impl IntoIterator<Item = Lease>) {
        self.lock().extend(leases);
    }

    /// Holds `leases` instead of everything held; what was held.
    pub fn replace_all(&self, leases: Vec<Lease>) -> Vec<Lease> {
        std::mem::replace(&mut *self.lock(), leases)
    }

    /// Releases `leases` once `grace` has passed, revoking them then through `backends` (when
    /// given; `--no-revoke` gives none). Until then they stay held, so an exit before the grace
    /// ends revokes them with the rest.
    pub fn release_after(
        &self,
        leases: Vec<Lease>,
        grace: Duration,
        backends: Option<Arc<Backends>>,
    ) {
        let ledger = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(backends) = backends {
                backends.revoke_all(&leases).await;
            }
            ledger.lock().retain(|l| !leases.contains(l));
        });
    }

    /// Everything held, for the revocation at exit.
    pub fn all(&self) -> Vec<Lease> {
        self.lock().clone()
    }

    /// The leases, also after a panic elsewhere poisoned the lock (a list of ids stays valid).
    fn lock(&self) -> MutexGuard<'_, Vec<Lease>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A lease and when it was last obtained or renewed.
#[derive(Debug, Clone)]
pub(super) struct LeaseClock {
    /// The lease as last obtained or renewed.
    pub(super) lease: Lease,
    /// When that was.
    pub(super) since: Instant,
    /// The TTL it was first issued with: a renewal that comes back shorter nears the max TTL.
    pub(super) issued_ttl: u64,
}

impl LeaseClock {
    /// A lease obtained now.
    pub(super) fn new(lease: Lease) -> LeaseClock {
        LeaseClock {
            issued_ttl: lease.duration_secs,
            lease,
            since: Instant::now(),
        }
    }

    /// About two thirds into the lease.
    pub(super) fn due(&self) -> Instant {
        let two_thirds = Duration::from_millis(self.lease.duration_secs.saturating_mul(2000) / 3);
        self.since.checked_add(two_thirds).unwrap_or(self.since)
    }
}
