//! Logging in to Vault, and keeping envoke's own login alive until it logs out.
//!
//! With `auth =` other than `token`, [`VaultProvider::connect`] logs in (`auth/MOUNT/login`)
//! before anything is read, and every request uses that token. While envoke supervises,
//! [`VaultProvider::keep_login_alive`] renews it at about two thirds of its TTL and logs in again
//! when renewal no longer helps (a refused renewal, or one cut short by the max TTL); the child
//! is never restarted for envoke's own token. [`VaultProvider::logout`] revokes it at exit. A
//! token the user gave is neither renewed nor revoked: whoever made it owns it.
//!
//! Credentials are read when a login is made (a secret id or JWT file may have been rotated
//! since the last one), and every body that holds one is zeroized.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::VaultProvider;
use super::token::{self, Lifetime, Origin, Token, header_safe, read_secret_file};
use crate::config::vault::{Credential, LoginMethod, VaultAuth};
use crate::provider::FetchError;
use crate::sanitize::{escaped, one_line};
use crate::secret::zeroize_json;
use crate::untrusted_file::Guard;

impl VaultProvider {
    /// Who envoke reads as, for the audit events, never a token: `token` for one the user gave
    /// (`token from PATH` for a file), `METHOD login at auth/MOUNT[ role ROLE], accessor ACC`
    /// for envoke's own login.
    pub fn identity(&self) -> String {
        let token = self.token();
        match (&self.auth, &token.origin) {
            (VaultAuth::Login { mount, method }, _) => {
                let role = login_role(method)
                    .map(|role| format!(" role {}", escaped(role)))
                    .unwrap_or_default();
                format!(
                    "{} login at auth/{}{role}, accessor {}",
                    method.name(),
                    escaped(mount),
                    token.accessor.as_deref().unwrap_or("-")
                )
            }
            (_, Origin::File { path, .. }) => {
                format!("token from {}", escaped(&path.display().to_string()))
            }
            _ => "token".to_owned(),
        }
    }

    /// Logs in with the configured method; the error names the method, the mount and Vault's
    /// reason.
    pub(super) async fn login(&self) -> Result<Token, FetchError> {
        let VaultAuth::Login { mount, method } = &self.auth else {
            return Err(FetchError::Other(
                "envoke was given a token; it does not log in".to_owned(),
            ));
        };
        let failed = |reason: String| {
            FetchError::Other(format!(
                "cannot log in to Vault with {} at auth/{mount}: {reason}",
                method.name()
            ))
        };
        let body = login_body(method).map_err(|e| failed(e.to_string()))?;
        let envelope = self
            .request_with(
                &SecretString::from(String::new()),
                Method::POST,
                format!("auth/{mount}/login"),
                None,
                Some(body.to_vec()),
            )
            .await
            .map_err(|e| failed(e.to_string()))?;
        let auth = envelope
            .auth
            .filter(|auth| !auth.client_token.is_empty())
            .ok_or_else(|| failed("the answer has no token".to_owned()))?;
        let value = SecretString::from(auth.client_token.clone());
        if !header_safe(&value) {
            return Err(failed(
                "the token has a control character inside".to_owned(),
            ));
        }
        let accessor = one_line(&auth.accessor);
        tracing::info!(
            target: "envoke::audit",
            event = "vault.login",
            method = method.name(),
            mount = escaped(mount).as_str(),
            role = login_role(method).map(escaped).as_deref(),
            accessor = accessor.as_str(),
            ttl = auth.lease_duration,
            "logged in to Vault"
        );
        Ok(Token {
            accessor: Some(accessor),
            value,
            origin: Origin::Login(Lifetime {
                ttl: Duration::from_secs(auth.lease_duration),
                renewable: auth.renewable,
                since: Instant::now(),
            }),
        })
    }

    /// While envoke runs: renews its login token at about two thirds of its TTL, and logs in
    /// again when the renewal is refused or cut short by the max TTL. Failures are retried with
    /// backoff, never passed to the child. Returns at once for a token the user gave.
    pub async fn keep_login_alive(&self) {
        let mut failures: u32 = 0;
        loop {
            let Origin::Login(lifetime) = self.token().origin else {
                return;
            };
            let Some(due) = lifetime.due() else {
                return;
            };
            let wake = if failures == 0 {
                due
            } else {
                Instant::now() + retry_after(failures)
            };
            tokio::time::sleep_until(wake).await;
            let renewed = if lifetime.renewable {
                self.renew_self(lifetime.ttl).await
            } else {
                Ok(None)
            };
            let result = match renewed {
                Ok(Some(renewed)) => {
                    tracing::info!(
                        target: "envoke::audit",
                        event = "vault.token.renew",
                        accessor = self.token().accessor.as_deref(),
                        ttl = renewed.ttl.as_secs(),
                        "renewed envoke's Vault token"
                    );
                    if let Origin::Login(current) = &mut self.token().origin {
                        *current = renewed;
                    }
                    Ok(())
                }
                Err(error @ FetchError::Unreachable { .. }) => Err(error),
                Ok(None) | Err(_) => match self.login().await {
                    Ok(token) => {
                        // The old token is left to expire, not revoked: leases obtained with
                        // it end with it, and the watcher replaces them in time.
                        *self.token() = token;
                        Ok(())
                    }
                    Err(error) => Err(error),
                },
            };
            match result {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, "cannot keep envoke's Vault login alive; will retry");
                }
            }
        }
    }

    /// `auth/token/renew-self` for as long again as the token was issued for; `None` when
    /// Vault gives less (the max TTL is near), so that a fresh login follows.
    async fn renew_self(&self, ttl: Duration) -> Result<Option<Lifetime>, FetchError> {
        let body = serde_json::json!({ "increment": ttl.as_secs() }).to_string();
        let envelope = self
            .request(
                Method::PUT,
                "auth/token/renew-self".to_owned(),
                None,
                Some(body.into_bytes()),
            )
            .await?;
        let Some(auth) = envelope.auth else {
            return Ok(None);
        };
        let renewed = Duration::from_secs(auth.lease_duration);
        Ok(
            (renewed.saturating_add(Duration::from_secs(1)) >= ttl).then(|| Lifetime {
                ttl: renewed,
                renewable: auth.renewable,
                since: Instant::now(),
            }),
        )
    }

    /// Revokes the token envoke logged in with (`auth/token/revoke-self`), and with it whatever
    /// leases it still holds; a token the user gave is left alone.
    pub async fn logout(&self) {
        if !matches!(self.token().origin, Origin::Login(_)) {
            return;
        }
        match self
            .request(Method::PUT, "auth/token/revoke-self".to_owned(), None, None)
            .await
        {
            Ok(_) => tracing::info!(
                target: "envoke::audit",
                event = "vault.token.revoke",
                accessor = self.token().accessor.as_deref(),
                "revoked envoke's Vault token"
            ),
            Err(error) => tracing::warn!(%error, "cannot revoke envoke's Vault token"),
        }
    }
}

/// The login request's body for `method`: the role and the credential, read now (a secret id or
/// JWT file may have been rotated since the last login).
fn login_body(method: &LoginMethod) -> Result<Zeroizing<Vec<u8>>, FetchError> {
    let read = |what: &str, path: &Path| {
        read_secret_file(path).map_err(|error| error.for_file(what, path))
    };
    let body = match method {
        LoginMethod::AppRole { role_id, secret_id } => {
            let secret_id = match secret_id {
                Credential::Value(value) => value.clone(),
                Credential::File(path) => read("secret id file", path)?,
            };
            serde_json::json!({ "role_id": role_id, "secret_id": secret_id.expose_secret() })
        }
        LoginMethod::Kubernetes { role, jwt_file } | LoginMethod::Jwt { role, jwt_file } => {
            let jwt = read("JWT file", jwt_file)?;
            serde_json::json!({ "role": role, "jwt": jwt.expose_secret() })
        }
        LoginMethod::Cert { role, .. } => match role {
            Some(role) => serde_json::json!({ "name": role }),
            None => serde_json::json!({}),
        },
    };
    let mut body = body;
    let bytes = Zeroizing::new(body.to_string().into_bytes());
    zeroize_json(&mut body);
    Ok(bytes)
}

/// The role a login names, when it names one by name (an AppRole's role id is left out: it is
/// half of its credential).
fn login_role(method: &LoginMethod) -> Option<&str> {
    match method {
        LoginMethod::Kubernetes { role, .. } | LoginMethod::Jwt { role, .. } => Some(role),
        LoginMethod::Cert { role, .. } => role.as_deref(),
        LoginMethod::AppRole { .. } => None,
    }
}

/// The TLS client identity for `cert` logins: the PEM certificate followed by its key.
pub(super) fn client_identity(cert: &Path, key: &Path) -> Result<reqwest::Identity, FetchError> {
    let read = |path: &Path, what: &str, guard: Guard| {
        token::read_bounded(path, 1024 * 1024, guard).map_err(|error| error.for_file(what, path))
    };
    let mut pem = read(cert, "client certificate", Guard::Credential)?;
    pem.extend_from_slice(b"\n");
    pem.extend_from_slice(&read(key, "client key", Guard::PrivateKey)?);
    reqwest::Identity::from_pem(&pem).map_err(|error| {
        FetchError::Other(format!(
            "cannot use the client certificate {} with the key {}: {error}",
            cert.display(),
            key.display()
        ))
    })
}

/// Backoff for retrying a failed renewal or login: 1 s doubling up to a minute, with jitter.
fn retry_after(failures: u32) -> Duration {
    let ceiling = Duration::from_secs(1)
        .saturating_mul(2u32.saturating_pow(failures.min(6)))
        .min(Duration::from_secs(60));
    ceiling.mul_f64(0.5 + fastrand::f64() * 0.5)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// As ssh refuses a private key others can read: a client key readable by every user is
    /// refused naming the key and the fix, before its text is parsed; the certificate, which is
    /// public, may be readable but not writable by others.
    #[test]
    fn a_client_key_others_can_read_and_a_certificate_others_can_write_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let mode = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        mode(&cert, 0o644);
        mode(&key, 0o644);
        let error = client_identity(&cert, &key).unwrap_err().to_string();
        assert!(error.contains("readable by every user"), "{error}");
        assert!(
            error.contains(&format!("chmod 600 {}", key.display())),
            "{error}"
        );
        mode(&key, 0o600);
        mode(&cert, 0o646);
        let error = client_identity(&cert, &key).unwrap_err().to_string();
        assert!(error.contains("writable by other users"), "{error}");
        assert!(error.contains(&cert.display().to_string()), "{error}");
        // Safe modes: what is left is that neither file holds PEM.
        mode(&cert, 0o644);
        let error = client_identity(&cert, &key).unwrap_err().to_string();
        assert!(
            error.contains("cannot use the client certificate"),
            "{error}"
        );
    }
}
