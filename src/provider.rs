//! The backends that hold secrets: AWS Secrets Manager ([`aws`]) and Vault/OpenBao ([`vault`]).
//!
//! A provider fetches *documents* (a whole SecretString, a whole Vault data map as JSON) and says
//! which version it got; picking a key out of a document is [`crate::resolve`]'s job. Errors are
//! mapped to [`FetchError`] at this boundary, so nothing above sees an SDK or HTTP error type
//! (some of which carry response bodies in their `Debug` output).
//!
//! [`Backends`] holds the clients a configuration needs, and only those: a backend that no
//! reference uses is never contacted.

pub mod aws;
pub mod vault;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use futures::future::maybe_done;

use crate::config::Config;
use crate::reference::Reference;
use crate::sanitize::one_line;
use crate::secret::SecretValue;

use self::aws::AwsProvider;
use self::vault::VaultProvider;

/// The connected backends; `None` for one that no reference uses.
pub struct Backends {
    /// AWS, or why it could not be set up.
    aws: Option<Result<AwsProvider, FetchError>>,
    /// Vault, or why it could not be set up.
    vault: Option<Result<VaultProvider, FetchError>>,
}

impl Backends {
    /// Sets up the backends that `config`'s references need, and only those.
    pub async fn connect(config: &Config) -> Backends {
        match Self::connect_unless(config, std::future::pending::<()>()).await {
            Ok(backends) => backends,
            Err(()) => unreachable!("a pending future never completes"),
        }
    }

    /// Like [`Backends::connect`], unless `interrupt` completes first. Then the AWS side is
    /// dropped where it is (it holds nothing that outlives envoke), but a Vault side that got as
    /// far as logging in is let finish (each request is bounded in time) and its login is
    /// revoked, before `interrupt`'s output is returned: a login token dropped mid-way would
    /// stay alive on the server for its whole TTL.
    pub async fn connect_unless<S>(
        config: &Config,
        interrupt: impl Future<Output = S>,
    ) -> Result<Backends, S> {
        let uses_aws = config
            .backend_references()
            .any(|r| matches!(r, Reference::Aws(_)));
        let uses_vault = config
            .backend_references()
            .any(|r| matches!(r, Reference::Vault(_)));
        let mut aws = pin!(maybe_done(async {
            if uses_aws {
                Some(AwsProvider::connect(&config.aws, &config.inherited).await)
            } else {
                None
            }
        }));
        let mut vault = pin!(maybe_done(async {
            match (uses_vault, &config.vault) {
                (true, Some(settings)) => Some(VaultProvider::connect(settings).await),
                _ => None,
            }
        }));
        let interrupted = tokio::select! {
            () = poll_fn(|cx| {
                let aws_done = aws.as_mut().poll(cx).is_ready();
                let vault_done = vault.as_mut().poll(cx).is_ready();
                if aws_done && vault_done {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }) => None,
            stop = interrupt => Some(stop),
        };
        if let Some(stop) = interrupted {
            vault.as_mut().await;
            let vault = vault.as_mut().take_output().flatten();
            Backends { aws: None, vault }.logout().await;
            return Err(stop);
        }
        Ok(Backends {
            aws: aws.as_mut().take_output().flatten(),
            vault: vault.as_mut().take_output().flatten(),
        })
    }

    /// While envoke supervises: keeps envoke's own Vault login alive (see
    /// [`VaultProvider::keep_login_alive`]); returns at once when there is none.
    pub async fn keep_login_alive(&self) {
        if let Ok(vault) = self.vault() {
            vault.keep_login_alive().await;
        }
    }

    /// At exit: revokes the token envoke logged in with, if it did.
    pub async fn logout(&self) {
        if let Ok(vault) = self.vault() {
            vault.logout().await;
        }
    }

    /// Who envoke reads `reference` as, for the audit events (never a credential).
    pub fn identity(&self, reference: &Reference) -> String {
        let identity = match reference {
            Reference::Aws(_) => self.aws().map(|aws| aws.identity().to_owned()),
            Reference::Vault(_) => self.vault().map(VaultProvider::identity),
        };
        identity.unwrap_or_else(|_| "-".to_owned())
    }

    /// The AWS provider, or why there is none.
    pub fn aws(&self) -> Result<&AwsProvider, FetchError> {
        match &self.aws {
            Some(Ok(provider)) => Ok(provider),
            Some(Err(error)) => Err(error.clone()),
            None => Err(FetchError::Other("AWS is not configured".to_owned())),
        }
    }

    /// The Vault provider, or why there is none.
    pub fn vault(&self) -> Result<&VaultProvider, FetchError> {
        match &self.vault {
            Some(Ok(provider)) => Ok(provider),
            Some(Err(error)) => Err(error.clone()),
            None => Err(FetchError::Other("Vault is not configured".to_owned())),
        }
    }

    /// Revokes leases, logging (not failing) when one cannot be.
    pub async fn revoke_all(&self, leases: &[Lease]) {
        let Ok(vault) = self.vault() else { return };
        for lease in leases {
            match vault.revoke(lease).await {
                Ok(()) => tracing::info!(
                    target: "envoke::audit",
                    event = "vault.lease.revoke",
                    lease = one_line(&lease.id).as_str(),
                    identity = vault.identity().as_str(),
                    "revoked lease"
                ),
                Err(error) => tracing::warn!(lease = %lease.id, %error, "cannot revoke lease"),
            }
        }
    }
}

/// A fetched secret document.
#[derive(Debug)]
pub struct Document {
    /// The document: a SecretString as stored, or a Vault data map as a JSON object.
    pub value: SecretValue,
    /// The version it came from: an AWS VersionId, a KV v2 version number.
    pub version: Option<String>,
    /// The Vault lease the document came with (dynamic secrets), if any.
    pub lease: Option<Lease>,
    /// Where it came from, for change detection.
    pub kind: DocumentKind,
}

/// What kind of source a document came from; decides how [`crate::watch`] detects a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentKind {
    /// AWS Secrets Manager: compare the version id holding the stage (DescribeSecret).
    Aws,
    /// Vault KV v2: compare `current_version` in the metadata at `mount` + `metadata/` + `rest`.
    VaultKv2 {
        /// The mount, with its trailing slash.
        mount: String,
        /// The path below the mount.
        rest: String,
    },
    /// Vault KV v1: no metadata; compare keyed hashes of re-read documents.
    VaultKv1,
    /// Another engine: a leased secret is renewed and replaced near its end; one without a lease
    /// is compared by keyed hash like KV v1.
    VaultOther,
}

/// A Vault lease.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The lease id (not a secret: it cannot be used without a token that may manage it).
    pub id: String,
    /// Seconds until it expires unless renewed.
    pub duration_secs: u64,
    /// Whether it can be renewed.
    pub renewable: bool,
}

/// Why a document could not be fetched. The messages name addresses and paths, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The secret (or the version asked for) does not exist.
    #[error("not found{}", suffix(.0))]
    NotFound(String),
    /// The credentials in use may not read it.
    #[error("access denied{}", suffix(.0))]
    AccessDenied(String),
    /// The backend did not answer.
    #[error("backend unreachable at {address}{}", suffix(.detail))]
    Unreachable {
        /// The address that was tried.
        address: String,
        /// What went wrong on the way (a timeout, a refused connection, a TLS failure), and
        /// what may help; empty when nothing more is known.
        detail: String,
    },
    /// The backend rejected the credentials themselves (a Vault token that is invalid or
    /// expired), as opposed to credentials that may not read this secret.
    #[error("{0}")]
    BadCredentials(String),
    /// The request or the secret is unusable as it is (a version on a KV v1 mount, a binary
    /// secret that is not UTF-8, ...).
    #[error("{0}")]
    Invalid(String),
    /// Anything else (missing credentials, no region, a server error).
    #[error("{0}")]
    Other(String),
}

fn suffix(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

impl FetchError {
    /// The status word `envoke check` reports.
    pub fn status(&self) -> &'static str {
        match self {
            FetchError::NotFound(_) => "not found",
            FetchError::AccessDenied(_) => "access denied",
            FetchError::Unreachable { .. } => "unreachable",
            FetchError::BadCredentials(_) => "bad credentials",
            FetchError::Invalid(_) => "invalid",
            FetchError::Other(_) => "error",
        }
    }
}

/// At most this many characters of a body that is not the answer expected are shown.
const EXCERPT: usize = 120;

/// A short, one-line, escaped excerpt of an error answer's body, for a message ("an empty
/// answer" when there is none). Only for error statuses: a successful answer may hold a value.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(4 * EXCERPT)]);
    let text = one_line(&text);
    if text.is_empty() {
        return "an empty answer".to_owned();
    }
    match text.char_indices().nth(EXCERPT) {
        Some((end, _)) => format!("\"{}...\"", &text[..end]),
        None => format!("\"{text}\""),
    }
}

/// The innermost error message, which says what actually failed ("Connection refused"), as one
/// line.
pub(crate) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    one_line(&current.to_string())
}

/// A connection's failure, with the fix when it is that the server's certificate was not
/// verified against any trusted CA (rustls's `UnknownIssuer`), or that the server does not
/// speak TLS at all (an `https://` address for a plain-HTTP server). `own_ca` names where this backend
/// takes a server's own CA besides the system's trust store, if anywhere.
pub(crate) fn connection_failure(cause: String, own_ca: Option<&str>) -> String {
    // rustls read the first bytes of an answer as a TLS record and they were not one: most
    // often an HTTP answer from a server that has no TLS on this port.
    if cause.contains("InvalidContentType") {
        return format!(
            "{cause}: the server answered without TLS; if it serves plain HTTP, write the \
             address with http:// instead of https://"
        );
    }
    if !cause.contains("UnknownIssuer") {
        return cause;
    }
    match no_trust_roots(own_ca) {
        Some(advice) => format!("{cause}: {advice}"),
        None => format!(
            "{cause}: the server's certificate is not signed by a CA this system trusts; for a \
             company's own CA, set {} to its PEM file",
            own_ca.unwrap_or("SSL_CERT_FILE")
        ),
    }
}

/// When the system has no trusted CA certificate at all, what to do about it. Most often a
/// `FROM scratch` or distroless/static image, which has no CA bundle; envoke builds in no roots
/// of its own, so that which CAs are trusted stays the image's decision (docs/install.md).
/// Loads the trust store: only on an error path (it costs a third of a launch's CPU time).
pub(crate) fn no_trust_roots(own_ca: Option<&str>) -> Option<String> {
    let or_own = own_ca
        .map(|setting| format!(", or {setting} to the server's own CA"))
        .unwrap_or_default();
    rustls_native_certs::load_native_certs()
        .certs
        .is_empty()
        .then(|| {
            format!(
                "no trusted CA certificates were found on this system (none at SSL_CERT_FILE, \
                 SSL_CERT_DIR or /etc/ssl, as in a scratch or distroless/static image); set \
                 SSL_CERT_FILE to a CA bundle, such as the one the envoke image carries at \
                 /etc/ssl/certs/ca-certificates.crt{or_own}"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_excerpt_is_short_escaped_and_one_line() {
        assert_eq!(body_excerpt(b""), "an empty answer");
        assert_eq!(body_excerpt(b" \r\n "), "an empty answer");
        assert_eq!(
            body_excerpt(b"<h1>502</h1>\n\x1b[31mBad"),
            "\"<h1>502</h1> \\u{1b}[31mBad\""
        );
        let long = body_excerpt(&[b'a'; 1 << 20]);
        assert_eq!(long.len(), EXCERPT + 5, "{long}");
        assert!(long.ends_with("...\""));
    }
}
