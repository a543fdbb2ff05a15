//! Which secrets engine serves a path, so that a reference can be written as `vault kv get`
//! takes it and still be read through the right API.
//!
//! The engine decides the request: KV v2 reads `MOUNT/data/REST`, KV v1 and every other engine
//! read the path as it is. The server's mount table answers (`sys/internal/ui/mounts/PATH`, as
//! the vault CLI asks), once per mount: mounts cannot nest, so a mount seen before answers for
//! every path under it.

use std::sync::PoisonError;

use reqwest::Method;

use super::VaultProvider;
use crate::provider::FetchError;

/// The engine behind a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// KV version 2, mounted at `mount` (with its trailing slash).
    KvV2 {
        /// The mount's path, e.g. `secret/`: a read of `secret/app` goes to `secret/data/app`.
        mount: String,
    },
    /// KV version 1.
    KvV1,
    /// Anything else: a plain read.
    Other,
}

impl VaultProvider {
    /// Which engine serves `path` (the server's mount table says; nothing is read). A server
    /// without the mount-lookup endpoint, or a path under no mount, is [`Engine::Other`].
    pub async fn engine(&self, path: &str) -> Result<Engine, FetchError> {
        self.engine_of(path).await
    }

    /// Which engine serves `path`, by the mount that holds it.
    pub(super) async fn engine_of(&self, path: &str) -> Result<Engine, FetchError> {
        // Mounts cannot nest in Vault, so a known mount that prefixes the path is its mount.
        if let Some((_, engine)) = self
            .mounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(mount, _)| path.starts_with(mount.as_str()))
        {
            return Ok(engine.clone());
        }
        let envelope = match self
            .request(
                Method::GET,
                format!("sys/internal/ui/mounts/{path}"),
                None,
                None,
            )
            .await
        {
            Ok(envelope) => envelope,
            // Servers without the endpoint (or paths under no mount): read the path as it is.
            Err(FetchError::NotFound(_)) => return Ok(Engine::Other),
            // OpenBao's (and Vault's) answer for a path under no mount, or under a mount the
            // token may not see.
            Err(FetchError::AccessDenied(reason))
                if reason.contains("preflight capability check returned 403") =>
            {
                let first = path.split('/').next().unwrap_or_default();
                return Err(FetchError::NotFound(format!(
                    "no secrets engine is mounted at `{first}/`, or the token may not see it: \
                     check the path (`vault secrets list` shows the mounts)"
                )));
            }
            Err(error) => return Err(error),
        };
        let data = envelope.data.unwrap_or_default();
        let (engine, mount) = mount_engine(&data);
        if mount.ends_with('/') && path.starts_with(mount) {
            self.mounts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((mount.to_owned(), engine.clone()));
        }
        Ok(engine)
    }
}

/// The engine that a mount-lookup answer's `data` names, and the mount's path (empty when the
/// answer has none).
fn mount_engine(data: &serde_json::Value) -> (Engine, &str) {
    let kind = data
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default();
    let version = data
        .pointer("/options/version")
        .and_then(|v| v.as_str())
        .unwrap_or("1");
    let mount = data
        .get("path")
        .and_then(|p| p.as_str())
        .unwrap_or_default();
    let engine = match (kind, version) {
        ("kv", "2") if !mount.is_empty() => Engine::KvV2 {
            mount: mount.to_owned(),
        },
        ("kv" | "generic", _) => Engine::KvV1,
        _ => Engine::Other,
    };
    (engine, mount)
}
