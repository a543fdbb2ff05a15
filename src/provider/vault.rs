//! Vault and OpenBao (the same HTTP API).
//!
//! A reference names a path the way `vault kv get` and `vault read` take it. Which API serves the
//! path depends on its mount, so each read first asks `sys/internal/ui/mounts/PATH` (as the vault
//! CLI does): KV v2 reads `MOUNT/data/REST?version=N`, KV v1 reads the path as it is, any other
//! engine (`database/creds/app`, ...) is a plain read whose lease is kept with the document.
//!
//! Every request goes through [`http`], which refuses redirects, caps bodies and bounds the time
//! a request may take, with the token in use then ([`token`]). Answers are read as Vault's
//! envelope, where a dynamic secret's lease lives (a typed client such as vaultrs strips it); the
//! raw body is zeroized once parsed.
//!
//! The login (with `auth =` other than `token`) and its upkeep are [`login`]'s job, finding the
//! engine behind a path [`engine`]'s; this file reads, writes and renews leases, and holds what
//! they all share: the provider, Vault's envelope and the request.

mod engine;
mod http;
mod login;
mod token;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures::StreamExt;
use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

pub use self::engine::Engine;

use self::http::VaultHttp;
use self::login::client_identity;
use self::token::{Origin, Token, header_safe};
use super::{Document, DocumentKind, FetchError, Lease};
use crate::config::vault::{LoginMethod, VaultAuth, VaultSettings};
use crate::sanitize::one_line;
use crate::secret::{SecretValue, zeroize_json};

/// Vault reads in flight at once. Each in-flight read holds a connection of its own; a bound lets
/// a few kept-alive connections serve many paths instead of opening one per path, which costs
/// the server (and this process) more than it saves: on the local benchmark 50 reads take less
/// time 16 at a time than all at once (docs/benchmarks.md), and 500 never mean 500 sockets.
const MAX_IN_FLIGHT: usize = 16;

/// What [`VaultProvider::store`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The secret is written.
    Written,
    /// Check-and-set refused the write: the secret's version is no longer the one read.
    Conflict,
}

/// One distinct read: a path, optionally at a KV v2 version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VaultRequest {
    /// The path as written in the reference.
    pub path: String,
    /// A pinned KV v2 version.
    pub version: Option<u64>,
}

/// A connected Vault client.
pub struct VaultProvider {
    http: VaultHttp,
    auth: VaultAuth,
    token: Mutex<Token>,
    /// Mounts seen so far (path with trailing slash, engine), so each is looked up once.
    mounts: Mutex<Vec<(String, Engine)>>,
}

/// Vault's response envelope.
#[derive(Deserialize, Default)]
struct Envelope {
    data: Option<serde_json::Value>,
    #[serde(default)]
    lease_id: String,
    #[serde(default, deserialize_with = "bounded_ttl")]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
    auth: Option<AuthInfo>,
}

/// The longest TTL envoke believes a server: ten years. A larger one (a hostile server's
/// `u64::MAX`) would overflow the clocks that schedule renewals.
const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;

fn bounded_ttl<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    u64::deserialize(deserializer).map(|ttl| ttl.min(MAX_TTL_SECS))
}

/// The `auth` part of a login's or a token renewal's answer.
#[derive(Deserialize)]
struct AuthInfo {
    #[serde(default)]
    client_token: String,
    #[serde(default)]
    accessor: String,
    #[serde(default, deserialize_with = "bounded_ttl")]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

impl Drop for AuthInfo {
    fn drop(&mut self) {
        self.client_token.zeroize();
    }
}

impl VaultProvider {
    /// Builds a client from the settings and logs in when `auth` says so. Fails without a
    /// token, with an unusable address, CA file or client certificate, or when the login fails.
    pub async fn connect(settings: &VaultSettings) -> Result<VaultProvider, FetchError> {
        let token = match &settings.auth {
            VaultAuth::Token(source) => Token::given(source)?,
            // Replaced by the login's token below, before any request that needs one.
            VaultAuth::Login { .. } => Token {
                value: SecretString::from(String::new()),
                origin: Origin::Given,
                accessor: None,
            },
        };
        if !header_safe(&token.value) {
            return Err(FetchError::Other(
                "the Vault token has a control character inside".to_owned(),
            ));
        }
        let identity = match &settings.auth {
            VaultAuth::Login {
                method:
                    LoginMethod::Cert {
                        client_cert,
                        client_key,
                        ..
                    },
                ..
            } => Some(client_identity(client_cert, client_key)?),
            _ => None,
        };
        let provider = VaultProvider {
            http: VaultHttp::new(settings, identity)?,
            auth: settings.auth.clone(),
            token: Mutex::new(token),
            mounts: Mutex::default(),
        };
        if let VaultAuth::Login { .. } = provider.auth {
            let token = provider.login().await?;
            *provider.token() = token;
        }
        Ok(provider)
    }

    /// The token in use, locked (a poisoned lock is used anyway).
    fn token(&self) -> MutexGuard<'_, Token> {
        self.token.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads a path (as `vault kv get` / `vault read` take it), optionally a KV v2 version.
    pub async fn read(&self, request: &VaultRequest) -> Result<Document, FetchError> {
        let VaultRequest { path, version } = request;
        let engine = self.engine_of(path).await?;
        tracing::debug!(path, ?engine, "vault: read");
        match engine {
            Engine::KvV2 { mount } => self.read_kv2(path, &mount, *version).await,
            Engine::KvV1 | Engine::Other if version.is_some() => Err(FetchError::Invalid(
                "`?version=N` needs a KV v2 mount; this path is not on one".to_owned(),
            )),
            Engine::KvV1 => self.read_plain(path, DocumentKind::VaultKv1).await,
            Engine::Other => self.read_plain(path, DocumentKind::VaultOther).await,
        }
    }

    /// KV v2: `MOUNT/data/REST`, whose data holds the secret's data and its metadata.
    async fn read_kv2(
        &self,
        path: &str,
        mount: &str,
        version: Option<u64>,
    ) -> Result<Document, FetchError> {
        let rest = path.strip_prefix(mount).unwrap_or_default();
        if rest.is_empty() {
            return Err(FetchError::Invalid(format!(
                "`{path}` is the mount itself; name a secret under it"
            )));
        }
        let envelope = match self
            .request(
                Method::GET,
                format!("{mount}data/{rest}"),
                version.map(|v| format!("version={v}")),
                None,
            )
            .await
        {
            Ok(envelope) => envelope,
            Err(FetchError::NotFound(reason)) => {
                return Err(FetchError::NotFound(match kv2_prefix_hint(mount, rest) {
                    Some(hint) => format!("{reason}; {hint}"),
                    None => reason,
                }));
            }
            Err(error) => return Err(error),
        };
        let Some(mut data) = envelope.data else {
            return Err(FetchError::NotFound(String::new()));
        };
        let version = data
            .pointer("/metadata/version")
            .and_then(serde_json::Value::as_u64)
            .map(|v| v.to_string());
        let secret = data.get_mut("data").map(serde_json::Value::take);
        zeroize_json(&mut data);
        match secret {
            Some(mut secret @ serde_json::Value::Object(_)) => {
                let value = SecretValue::new(secret.to_string());
                zeroize_json(&mut secret);
                Ok(Document {
                    value,
                    version,
                    lease: None,
                    kind: DocumentKind::VaultKv2 {
                        mount: mount.to_owned(),
                        rest: rest.to_owned(),
                    },
                })
            }
            _ => Err(FetchError::NotFound(
                "that version was deleted or destroyed".to_owned(),
            )),
        }
    }

    /// KV v1 and other engines: the path as it is; a dynamic secret's lease is in the envelope.
    async fn read_plain(&self, path: &str, kind: DocumentKind) -> Result<Document, FetchError> {
        let envelope = self
            .request(Method::GET, path.to_owned(), None, None)
            .await?;
        let lease = (!envelope.lease_id.is_empty()).then(|| Lease {
            id: envelope.lease_id.clone(),
            duration_secs: envelope.lease_duration,
            renewable: envelope.renewable,
        });
        match envelope.data {
            Some(mut data @ serde_json::Value::Object(_)) => {
                let value = SecretValue::new(data.to_string());
                zeroize_json(&mut data);
                Ok(Document {
                    value,
                    version: None,
                    lease,
                    kind,
                })
            }
            _ => Err(FetchError::NotFound(String::new())),
        }
    }

    /// Writes `data` (a JSON object) as the secret at `path`, on a KV v1 or v2 mount. On KV v2
    /// with `cas`, only while the secret's version is still `cas` (0: while it does not exist):
    /// check-and-set, so a concurrent writer is not overwritten blind. KV v1 has no such check.
    pub async fn store(
        &self,
        path: &str,
        data: &SecretValue,
        cas: Option<u64>,
    ) -> Result<Stored, FetchError> {
        let engine = self.engine_of(path).await?;
        let (api_path, body) = match engine {
            Engine::KvV2 { mount } => {
                let rest = path.strip_prefix(mount.as_str()).unwrap_or_default();
                let options =
                    cas.map_or_else(String::new, |cas| format!("\"options\":{{\"cas\":{cas}}},"));
                (
                    format!("{mount}data/{rest}"),
                    format!("{{{options}\"data\":{}}}", data.expose()),
                )
            }
            Engine::KvV1 => (path.to_owned(), data.expose().to_owned()),
            Engine::Other => {
                return Err(FetchError::Invalid(format!(
                    "`{path}` is not on a KV secrets engine; import writes to KV v1 or v2"
                )));
            }
        };
        tracing::debug!(path = %api_path, ?cas, "vault: write");
        let body = Zeroizing::new(body.into_bytes());
        match self
            .request(Method::POST, api_path, None, Some(body.to_vec()))
            .await
        {
            Ok(_) => Ok(Stored::Written),
            // OpenBao and Vault: "check-and-set parameter did not match the current version".
            Err(error) if error.to_string().contains("check-and-set") => Ok(Stored::Conflict),
            Err(error) => Err(error),
        }
    }

    /// The current version of the KV v2 secret at `path` (a `vault://` reference's path), from
    /// its metadata: no value is read. Other engines have no version to ask.
    pub async fn current_version(&self, path: &str) -> Result<u64, FetchError> {
        match self.engine_of(path).await? {
            Engine::KvV2 { mount } => {
                let rest = path.strip_prefix(mount.as_str()).unwrap_or_default();
                self.kv2_current_version(&mount, rest).await
            }
            Engine::KvV1 | Engine::Other => Err(FetchError::Invalid(format!(
                "`{path}` is not on a KV v2 mount: it has no version to watch"
            ))),
        }
    }

    /// The current version of a KV v2 secret, from its metadata (no value is read).
    pub async fn kv2_current_version(&self, mount: &str, rest: &str) -> Result<u64, FetchError> {
        tracing::debug!(mount, rest, "vault: read metadata");
        let envelope = self
            .request(Method::GET, format!("{mount}metadata/{rest}"), None, None)
            .await?;
        envelope
            .data
            .as_ref()
            .and_then(|d| d.get("current_version"))
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| FetchError::NotFound(format!("no metadata at {mount}metadata/{rest}")))
    }

    /// Renews a lease (`sys/leases/renew`), asking for `increment_secs` more; returns the lease as
    /// renewed (its duration may be shorter than asked when the max TTL is near).
    pub async fn renew(&self, lease: &Lease, increment_secs: u64) -> Result<Lease, FetchError> {
        tracing::debug!(lease = %lease.id, increment_secs, "vault: renew lease");
        let body = serde_json::json!({ "lease_id": lease.id, "increment": increment_secs });
        let envelope = self
            .request(
                Method::PUT,
                "sys/leases/renew".to_owned(),
                None,
                Some(body.to_string().into_bytes()),
            )
            .await?;
        Ok(Lease {
            id: lease.id.clone(),
            duration_secs: envelope.lease_duration,
            renewable: envelope.renewable,
        })
    }

    /// Revokes a lease (`sys/leases/revoke`).
    pub async fn revoke(&self, lease: &Lease) -> Result<(), FetchError> {
        let body = serde_json::json!({ "lease_id": lease.id }).to_string();
        self.request(
            Method::PUT,
            "sys/leases/revoke".to_owned(),
            None,
            Some(body.into_bytes()),
        )
        .await
        .map(drop)
    }

    /// Reads several paths concurrently, at most [`MAX_IN_FLIGHT`] at a time. One path per
    /// top-level segment goes first, so its mount lookup serves the others (one lookup per mount,
    /// not per path).
    pub async fn read_all(
        &self,
        requests: Vec<VaultRequest>,
    ) -> HashMap<VaultRequest, Result<Document, FetchError>> {
        let mut scouts = std::collections::BTreeMap::new();
        for VaultRequest { path, .. } in &requests {
            let top = path.split('/').next().unwrap_or_default();
            scouts.entry(top.to_owned()).or_insert_with(|| path.clone());
        }
        let scouted = futures::future::join_all(
            scouts
                .iter()
                .map(|(top, path)| async move { (top.clone(), self.engine_of(path).await) }),
        )
        .await;
        // A server that did not answer the scout is not asked again for every path: each
        // would wait out the timeout anew. Nor is a token it rejected.
        let unreachable: HashMap<String, FetchError> = scouted
            .into_iter()
            .filter_map(|(top, result)| match result {
                Err(error @ (FetchError::Unreachable { .. } | FetchError::BadCredentials(_))) => {
                    Some((top, error))
                }
                _ => None,
            })
            .collect();
        let unreachable = &unreachable;
        futures::stream::iter(requests.into_iter().map(|request| async move {
            let top = request.path.split('/').next().unwrap_or_default();
            let result = match unreachable.get(top) {
                Some(error) => Err(error.clone()),
                None => self.read(&request).await,
            };
            (request, result)
        }))
        .buffer_unordered(MAX_IN_FLIGHT)
        .collect()
        .await
    }

    /// A request with the token in use.
    async fn request(
        &self,
        method: Method,
        path: String,
        query: Option<String>,
        body: Option<Vec<u8>>,
    ) -> Result<Envelope, FetchError> {
        let token = self.token().current();
        let capability = capability(&method);
        match self.request_with(&token, method, &path, query, body).await {
            Err(FetchError::AccessDenied(reason)) if path != LOOKUP_SELF => {
                let reason = format!("needs {capability} on {} ({reason})", one_line(&path));
                Err(self.explain_denial(&token, reason).await)
            }
            result => result,
        }
    }

    /// A 403 means either that the token may not do this or that it is no token at all (invalid,
    /// expired, revoked): OpenBao answers "permission denied" for both. Asks once whether the
    /// token is valid (`auth/token/lookup-self`): when that is allowed, the token is fine and
    /// the denial stands. A token without the default policy may not look itself up either,
    /// but then the ACL check answers, wrapped ("1 error occurred: * permission denied"), while
    /// a token that is not one is refused before any policy is read, with the bare "permission
    /// denied" (or, in newer Vault, "invalid token").
    async fn explain_denial(&self, token: &SecretString, reason: String) -> FetchError {
        let lookup = self
            .request_with(token, Method::GET, LOOKUP_SELF, None, None)
            .await;
        match lookup {
            Err(FetchError::AccessDenied(answer))
                if answer == "permission denied" || answer.contains("invalid token") =>
            {
                FetchError::BadCredentials(match &self.token().origin {
                    Origin::Given => "the Vault token is invalid or expired (run `vault login`, \
                                      or check VAULT_TOKEN / BAO_TOKEN)"
                        .to_owned(),
                    Origin::File { path, .. } => format!(
                        "the Vault token in {} is invalid or expired (run `vault login`, or \
                         check the token file)",
                        path.display()
                    ),
                    Origin::Login(_) => "envoke's Vault login expired or was revoked: its \
                                         token is no longer valid"
                        .to_owned(),
                })
            }
            _ => FetchError::AccessDenied(reason),
        }
    }

    async fn request_with(
        &self,
        token: &SecretString,
        method: Method,
        path: impl Into<String>,
        query: Option<String>,
        body: Option<Vec<u8>>,
    ) -> Result<Envelope, FetchError> {
        let path = path.into();
        let mut body = self
            .http
            .call(
                token,
                method,
                &path,
                query.as_deref(),
                body.map(Zeroizing::new),
            )
            .await?;
        let parsed = if body.is_empty() {
            Ok(Envelope::default())
        } else {
            serde_json::from_slice::<Envelope>(&body)
        };
        body.zeroize();
        parsed.map_err(|_| {
            FetchError::Other(format!(
                "unexpected response from {} for {path}",
                self.http.address()
            ))
        })
    }
}

/// Where a token looks itself up.
const LOOKUP_SELF: &str = "auth/token/lookup-self";

/// For a KV v2 path that is not found and whose part below the mount starts with `data/` or
/// `metadata/` (as the HTTP API spells it): the reference as envoke wants it.
fn kv2_prefix_hint(mount: &str, rest: &str) -> Option<String> {
    ["data/", "metadata/"].into_iter().find_map(|prefix| {
        let stripped = rest.strip_prefix(prefix).filter(|s| !s.is_empty())?;
        Some(format!(
            "drop {prefix} (envoke adds data/ for KV v2): vault://{mount}{stripped}"
        ))
    })
}

/// The ACL capability a request of this method needs, as a Vault policy names it: a denial
/// names it with the path, whatever the command (run, check, policy, the watcher).
fn capability(method: &Method) -> String {
    match method.as_str() {
        "GET" | "HEAD" => "read".to_owned(),
        "POST" | "PUT" => "update".to_owned(),
        "DELETE" => "delete".to_owned(),
        "LIST" => "list".to_owned(),
        other => other.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kv2_path_spelled_as_the_api_spells_it_gets_a_hint() {
        assert_eq!(
            kv2_prefix_hint("secret/", "data/app/api").as_deref(),
            Some("drop data/ (envoke adds data/ for KV v2): vault://secret/app/api")
        );
        assert!(kv2_prefix_hint("secret/", "metadata/x").is_some());
        assert_eq!(kv2_prefix_hint("secret/", "app/api"), None);
        assert_eq!(kv2_prefix_hint("secret/", "data/"), None);
        assert_eq!(kv2_prefix_hint("secret/", "database"), None);
    }
}
