//! `--recheck-on REF`: one secret whose version the watcher asks at every poll. When it moves,
//! that poll becomes a check of everything, as the recheck signal makes it: leases renewed or
//! replaced, AWS stages described, the splay before any restart. A fleet that cannot be sent a
//! signal (ECS on Fargate) is told to recheck by a new value in that one secret. Only its
//! version is asked (DescribeSecret, KV v2 metadata), never its value.

use crate::provider::{Backends, FetchError};
use crate::reference::Reference;
use crate::resolve::FetchKey;

/// The recheck secret and the version last seen.
pub(super) struct RecheckSecret {
    key: FetchKey,
    seen: Option<String>,
}

impl RecheckSecret {
    /// Watches `reference`; its first answer is the baseline.
    pub(super) fn new(reference: &Reference) -> RecheckSecret {
        RecheckSecret {
            key: FetchKey::of(reference),
            seen: None,
        }
    }

    /// The secret, as logs name it.
    pub(super) fn key(&self) -> &FetchKey {
        &self.key
    }

    /// Asks the secret's version: the version it moved from and to, when it moved since the
    /// last answer (the first answer only sets the baseline).
    pub(super) async fn moved(
        &mut self,
        backends: &Backends,
    ) -> Result<Option<(String, String)>, FetchError> {
        let now = match &self.key {
            FetchKey::Aws(request) => backends
                .aws()?
                .describe(request)
                .await?
                .version
                .unwrap_or_default(),
            FetchKey::Vault(request) => backends
                .vault()?
                .current_version(&request.path)
                .await?
                .to_string(),
        };
        match self.seen.replace(now.clone()) {
            Some(before) if before != now => Ok(Some((before, now))),
            _ => Ok(None),
        }
    }
}
