//! Vault and OpenBao (the same HTTP API), through vaultrs.
//!
//! A reference names a path the way `vault kv get` and `vault read` take it. Which API serves the
//! path depends on its mount, so each read first asks `sys/internal/ui/mounts/PATH` (as the vault
//! CLI does): KV v2 reads `MOUNT/data/REST?version=N`, KV v1 reads the path as it is, any other
//! engine (`database/creds/app`, ...) is a plain read whose lease is kept with the document.
//!
//! vaultrs's typed helpers strip the response envelope, and the envelope is where a dynamic
//! secret's lease lives; so reads go through [`RawRequest`], a rustify endpoint executed with
//! vaultrs's client and middleware (token, namespace, TLS settings). The raw response body is
//! zeroized once parsed.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use rustify::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use rustify::errors::ClientError as HttpError;
use secrecy::ExposeSecret;
use serde::Deserialize;
use vaultrs::client::{VaultClient, VaultClientSettings};
use zeroize::Zeroize;

use super::{Document, DocumentKind, FetchError, Lease};
use crate::config::vault::VaultSettings;
use crate::secret::{SecretValue, zeroize_json};

/// Vault reads in flight at once. Each in-flight read holds a connection of its own; a bound lets
/// a few kept-alive connections serve many paths instead of opening one per path, which costs
/// the server (and this process) more than it saves: on the local benchmark 50 reads take less
/// time 16 at a time than all at once (docs/benchmarks.md), and 500 never mean 500 sockets.
const MAX_IN_FLIGHT: usize = 16;

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
    client: VaultClient,
    address: String,
    /// Mounts seen so far (path with trailing slash, engine), so each is looked up once.
    mounts: std::sync::Mutex<Vec<(String, Engine)>>,
}

/// The engine behind a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Engine {
    /// KV version 2, mounted at `mount` (with its trailing slash).
    KvV2 { mount: String },
    /// KV version 1.
    KvV1,
    /// Anything else: a plain read.
    Other,
}

/// Vault's response envelope.
#[derive(Deserialize)]
struct Envelope {
    data: Option<serde_json::Value>,
    #[serde(default)]
    lease_id: String,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

/// A request to any path; vaultrs's middleware adds `/v1`, the token and the namespace.
struct RawRequest {
    method: RequestMethod,
    path: String,
    query: Option<String>,
    body: Option<Vec<u8>>,
}

impl Endpoint for RawRequest {
    type Response = serde_json::Value;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        self.path.clone()
    }

    fn method(&self) -> RequestMethod {
        self.method.clone()
    }

    fn query(&self) -> Result<Option<String>, HttpError> {
        Ok(self.query.clone())
    }

    fn body(&self) -> Result<Option<Vec<u8>>, HttpError> {
        Ok(self.body.clone())
    }
}

impl VaultProvider {
    /// Builds a client from the settings. Fails without a token or with an unusable address or
    /// CA file.
    pub fn connect(settings: &VaultSettings) -> Result<VaultProvider, FetchError> {
        let address = url::Url::parse(&settings.address).map_err(|e| {
            FetchError::Other(format!(
                "invalid Vault address `{}`: {e} (set VAULT_ADDR or `address` under [vault])",
                settings.address
            ))
        })?;
        let Some(token) = &settings.token else {
            return Err(FetchError::Other(
                "no Vault token: set VAULT_TOKEN or run `vault login` (~/.vault-token)".to_owned(),
            ));
        };
        let client_settings = VaultClientSettings {
            address,
            ca_certs: settings.ca_cert.iter().cloned().collect(),
            identity: None,
            timeout: Some(Duration::from_secs(30)),
            token: token.expose_secret().to_owned(),
            verify: !settings.skip_verify,
            version: 1,
            wrapping: false,
            namespace: settings.namespace.clone(),
            proxy: None,
        };
        let client = VaultClient::new(client_settings)
            .map_err(|e| FetchError::Other(format!("cannot set up the Vault client: {e}")))?;
        Ok(VaultProvider {
            client,
            address: settings.address.clone(),
            mounts: std::sync::Mutex::default(),
        })
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
        let envelope = self
            .request(
                RequestMethod::GET,
                format!("{mount}data/{rest}"),
                version.map(|v| format!("version={v}")),
                None,
            )
            .await?;
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
            .request(RequestMethod::GET, path.to_owned(), None, None)
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

    /// The current version of a KV v2 secret, from its metadata (no value is read).
    pub async fn kv2_current_version(&self, mount: &str, rest: &str) -> Result<u64, FetchError> {
        tracing::debug!(mount, rest, "vault: read metadata");
        let envelope = self
            .request(
                RequestMethod::GET,
                format!("{mount}metadata/{rest}"),
                None,
                None,
            )
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
                RequestMethod::PUT,
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
            RequestMethod::PUT,
            "sys/leases/revoke".to_owned(),
            None,
            Some(body.into_bytes()),
        )
        .await
        .map(drop)
    }

    /// Which engine serves `path`, by the mount that holds it.
    async fn engine_of(&self, path: &str) -> Result<Engine, FetchError> {
        // Mounts cannot nest in Vault, so a known mount that prefixes the path is its mount.
        if let Some((_, engine)) = self
            .mounts
            .lock()
            .expect("mount cache lock")
            .iter()
            .find(|(mount, _)| path.starts_with(mount.as_str()))
        {
            return Ok(engine.clone());
        }
        let envelope = match self
            .request(
                RequestMethod::GET,
                format!("sys/internal/ui/mounts/{path}"),
                None,
                None,
            )
            .await
        {
            Ok(envelope) => envelope,
            // Servers without the endpoint (or paths under no mount): read the path as it is.
            Err(FetchError::NotFound(_)) => return Ok(Engine::Other),
            Err(error) => return Err(error),
        };
        let data = envelope.data.unwrap_or_default();
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
        if mount.ends_with('/') && path.starts_with(mount) {
            self.mounts
                .lock()
                .expect("mount cache lock")
                .push((mount.to_owned(), engine.clone()));
        }
        Ok(engine)
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
        futures::future::join_all(scouts.values().map(|path| self.engine_of(path))).await;
        futures::stream::iter(requests.into_iter().map(|request| async move {
            let result = self.read(&request).await;
            (request, result)
        }))
        .buffer_unordered(MAX_IN_FLIGHT)
        .collect()
        .await
    }

    async fn request(
        &self,
        method: RequestMethod,
        path: String,
        query: Option<String>,
        body: Option<Vec<u8>>,
    ) -> Result<Envelope, FetchError> {
        let request = RawRequest {
            method,
            path: path.clone(),
            query,
            body,
        };
        let mut response = request
            .with_middleware(&self.client.middle)
            .exec(&self.client.http)
            .await
            .map_err(|e| self.map_error(&path, e))?;
        let body = response.response.body_mut();
        let parsed = if body.is_empty() {
            Ok(Envelope {
                data: None,
                lease_id: String::new(),
                lease_duration: 0,
                renewable: false,
            })
        } else {
            serde_json::from_slice::<Envelope>(body)
        };
        body.zeroize();
        parsed.map_err(|_| {
            FetchError::Other(format!(
                "unexpected response from {} for {path}",
                self.address
            ))
        })
    }

    fn map_error(&self, path: &str, error: HttpError) -> FetchError {
        match error {
            HttpError::ServerResponseError { code, content } => {
                let messages = content
                    .as_deref()
                    .and_then(|c| serde_json::from_str::<ErrorBody>(c).ok())
                    .map(|b| b.errors.join("; "))
                    .unwrap_or_default();
                match code {
                    404 => FetchError::NotFound(format!("no secret at {path}")),
                    403 => FetchError::AccessDenied(if messages.is_empty() {
                        "permission denied".to_owned()
                    } else {
                        messages
                    }),
                    _ => FetchError::Other(format!(
                        "{} answered HTTP {code} for {path}{}",
                        self.address,
                        if messages.is_empty() {
                            String::new()
                        } else {
                            format!(": {messages}")
                        }
                    )),
                }
            }
            HttpError::RequestError { source, .. } => FetchError::Unreachable {
                address: self.address.clone(),
                detail: source.root_cause().to_string(),
            },
            other => FetchError::Other(format!("request to {} failed: {other}", self.address)),
        }
    }
}

/// Vault's error body: `{"errors": ["..."]}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
}
