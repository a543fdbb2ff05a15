//! The HTTP exchange with Vault, with the limits a hostile or broken server cannot get around.
//!
//! envoke builds its own reqwest client rather than vaultrs's, because vaultrs's defaults are
//! wrong for a tool that carries a token: it follows redirects (reqwest strips `Authorization` on a
//! redirect to another host, but not `X-Vault-Token`), it reads any body whole into memory, and it
//! builds header values with `unwrap`, so a token with a newline in it panics.
//!
//! - Redirects are never followed. A 3xx answer is an error naming both addresses (the vault CLI
//!   refuses an https→http redirect the same way); no credential crosses one.
//! - A body larger than [`MAX_BODY`] is refused: at once when Content-Length says so, else as
//!   soon as the bytes read pass it. Secrets Manager's own limit is 64 KiB a value; no Vault
//!   answer envoke reads comes near a few MiB.
//! - The whole exchange — connecting, headers and body — ends within [`REQUEST_TIMEOUT`];
//!   connecting alone within [`CONNECT_TIMEOUT`].
//! - The token and the namespace become header values through the fallible constructor; the token
//!   is marked sensitive, so that reqwest's own debug output shows no value.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::config::vault::VaultSettings;
use crate::provider::FetchError;
use crate::sanitize::one_line;
use crate::untrusted_file::Guard;

/// The largest response body envoke reads.
pub(super) const MAX_BODY: usize = 4 * 1024 * 1024;
/// The longest a request may take, body included.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a connection may take to open (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a Vault server's own CA is given, for messages.
const VAULT_CA_SETTING: &str = "VAULT_CACERT (or `ca_cert` under [vault])";

/// A client for one Vault server.
pub(super) struct VaultHttp {
    client: reqwest::Client,
    base: url::Url,
    /// `base` for messages, without a userinfo's password.
    shown: String,
    /// Whether `base` is the default address because none was set.
    default_address: bool,
    namespace: Option<HeaderValue>,
}

/// A successful answer's body (zeroized when dropped).
pub(super) type Body = Zeroizing<Vec<u8>>;

impl VaultHttp {
    pub(super) fn new(
        settings: &VaultSettings,
        identity: Option<reqwest::Identity>,
    ) -> Result<VaultHttp, FetchError> {
        let base = url::Url::parse(&settings.address)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                FetchError::Other(format!(
                    "invalid Vault address `{}`: not an http:// or https:// URL \
                     (set VAULT_ADDR or `address` under [vault])",
                    one_line(&settings.address)
                ))
            })?;
        let mut builder = reqwest::Client::builder()
            .tls_backend_rustls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tls_danger_accept_invalid_certs(settings.skip_verify);
        if base.scheme() == "http" {
            // No TLS: don't load the system's trust store for nothing.
            builder = builder.tls_certs_only(Vec::new());
        } else if let Some(ca) = &settings.ca_cert {
            // The CA named is the only one trusted, as the vault CLI does: not the CA plus every
            // public one.
            builder = builder.tls_certs_only(read_ca(Path::new(ca))?);
        }
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        let client = builder.build().map_err(|e| {
            // reqwest's verifier refuses to be built over an empty trust store.
            let advice = (base.scheme() == "https" && settings.ca_cert.is_none())
                .then(|| crate::provider::no_trust_roots(Some(VAULT_CA_SETTING)))
                .flatten();
            FetchError::Other(format!(
                "cannot set up the Vault client: {}",
                advice.unwrap_or_else(|| crate::provider::root_cause(&e))
            ))
        })?;
        let namespace = settings
            .namespace
            .as_deref()
            .map(HeaderValue::from_str)
            .transpose()
            .map_err(|_| {
                FetchError::Other("the Vault namespace is not a valid header value".to_owned())
            })?;
        Ok(VaultHttp {
            client,
            shown: crate::sanitize::redacted(base.as_str().trim_end_matches('/')),
            base,
            default_address: settings.default_address,
            namespace,
        })
    }

    /// The server's address, for messages.
    pub(super) fn address(&self) -> &str {
        &self.shown
    }

    /// One request to `/v1/PATH`; the body of a 2xx answer, or why there is none.
    pub(super) async fn call(
        &self,
        token: &SecretString,
        method: Method,
        path: &str,
        query: Option<&str>,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Body, FetchError> {
        let mut url = self
            .base
            .join(&format!("v1/{path}"))
            .map_err(|e| FetchError::Invalid(format!("`{path}` cannot be a Vault path: {e}")))?;
        url.set_query(query);
        let mut request = self
            .client
            .request(method, url)
            .header("X-Vault-Request", "true");
        if !token.expose_secret().is_empty() {
            let mut value = HeaderValue::from_str(token.expose_secret()).map_err(|_| {
                FetchError::Other("the Vault token is not a valid header value".to_owned())
            })?;
            value.set_sensitive(true);
            request = request.header("X-Vault-Token", value);
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace.clone());
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let exchange = async {
            let response = request.send().await.map_err(|e| self.unreachable(&e))?;
            let status = response.status();
            if status.is_redirection() {
                return Err(self.redirected(path, status, response.headers().get(LOCATION)));
            }
            let body = self.read_capped(response).await?;
            if status.is_success() {
                Ok(body)
            } else {
                Err(self.status_error(path, status, &body))
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Unreachable {
                    address: self.address().to_owned(),
                    detail: format!("no complete answer within {REQUEST_TIMEOUT:?}"),
                })
            })
    }

    /// The body, at most [`MAX_BODY`] bytes.
    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Body, FetchError> {
        let too_large = || {
            FetchError::Other(format!(
                "Vault at {} answered with a body larger than {} MiB; refused",
                self.address(),
                MAX_BODY / (1024 * 1024)
            ))
        };
        if response
            .content_length()
            .is_some_and(|length| length > MAX_BODY as u64)
        {
            return Err(too_large());
        }
        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(&e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn unreachable(&self, error: &reqwest::Error) -> FetchError {
        let cause = crate::provider::connection_failure(
            crate::provider::root_cause(error),
            Some(VAULT_CA_SETTING),
        );
        FetchError::Unreachable {
            address: self.address().to_owned(),
            detail: if self.default_address {
                format!(
                    "VAULT_ADDR is not set (nor `address` under [vault]), so the vault CLI's \
                     default address was tried: set VAULT_ADDR to your Vault server ({cause})"
                )
            } else {
                cause
            },
        }
    }

    fn redirected(
        &self,
        path: &str,
        status: StatusCode,
        location: Option<&HeaderValue>,
    ) -> FetchError {
        let to = location
            .and_then(|l| l.to_str().ok())
            .map_or_else(|| "elsewhere".to_owned(), one_line);
        FetchError::Other(format!(
            "Vault at {} redirected {path} (HTTP {}) to {to}; envoke does not follow redirects \
             and sends no token across one: set VAULT_ADDR to the address that answers",
            self.address(),
            status.as_u16()
        ))
    }

    fn status_error(&self, path: &str, status: StatusCode, body: &[u8]) -> FetchError {
        let messages = serde_json::from_slice::<ErrorBody>(body)
            .map(|b| one_line(&b.errors.join("; ")))
            .unwrap_or_default();
        match status.as_u16() {
            404 => FetchError::NotFound(
                deleted_version(body).unwrap_or_else(|| format!("no secret at {path}")),
            ),
            403 => FetchError::AccessDenied(if messages.is_empty() {
                "permission denied".to_owned()
            } else {
                messages
            }),
            code => FetchError::Other(format!(
                "{} answered HTTP {code} for {path}: {}",
                self.address(),
                if messages.is_empty() {
                    crate::provider::body_excerpt(body)
                } else {
                    messages
                }
            )),
        }
    }
}

/// For KV v2's 404 of a version that was deleted or destroyed (its metadata comes with the
/// answer, its data is null), what became of it and what to do; `None` for any other 404.
fn deleted_version(body: &[u8]) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    let metadata = answer.pointer("/data/metadata")?;
    let version = metadata.get("version")?.as_u64()?;
    if metadata
        .get("destroyed")
        .and_then(serde_json::Value::as_bool)
        == Some(true)
    {
        return Some(format!(
            "version {version} was destroyed: write a new version, or pin an older one with \
             ?version=N"
        ));
    }
    let deleted = metadata
        .get("deletion_time")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|time| !time.is_empty());
    deleted.then(|| {
        format!(
            "version {version} was deleted: undelete it (`vault kv undelete -versions={version}`), \
             write a new version, or pin an older one with ?version=N"
        )
    })
}

/// Vault's error body: `{"errors": ["..."]}`.
#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
}

fn read_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, FetchError> {
    let pem = super::token::read_bounded(path, 1024 * 1024, Guard::Credential)
        .map_err(|error| error.for_file("Vault CA certificate", path))?;
    reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        FetchError::Other(format!(
            "cannot use the Vault CA certificate {}: {e}",
            path.display()
        ))
    })
}
