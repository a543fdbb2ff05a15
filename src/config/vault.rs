//! `[vault]` and the vault CLI's environment: where Vault is and how envoke proves who it is.

use std::path::Path;

use secrecy::SecretString;

use super::Environment;
use crate::manifest::VaultSection;

/// The vault CLI's default address.
const DEFAULT_VAULT_ADDR: &str = "https://127.0.0.1:8200";

/// Vault settings: the manifest's `[vault]` first, then the environment.
#[derive(Debug, Clone)]
pub struct VaultSettings {
    pub address: String,
    /// VAULT_TOKEN, else ~/.vault-token; `Debug` redacts it.
    pub token: Option<SecretString>,
    /// Enterprise namespace.
    pub namespace: Option<String>,
    /// PEM file of the CA that signed the server's certificate.
    pub ca_cert: Option<String>,
    pub skip_verify: bool,
}

impl VaultSettings {
    pub(super) fn load(
        section: &VaultSection,
        environment: &Environment,
        home: Option<&Path>,
    ) -> VaultSettings {
        let token = environment
            .get("VAULT_TOKEN")
            .or_else(|| read_token_file(home?))
            .map(SecretString::from);
        VaultSettings {
            address: section
                .address
                .clone()
                .or_else(|| environment.get("VAULT_ADDR"))
                .unwrap_or_else(|| DEFAULT_VAULT_ADDR.to_owned()),
            token,
            namespace: section
                .namespace
                .clone()
                .or_else(|| environment.get("VAULT_NAMESPACE")),
            ca_cert: section
                .ca_cert
                .clone()
                .or_else(|| environment.get("VAULT_CACERT")),
            skip_verify: section.skip_verify.unwrap_or_else(|| {
                environment
                    .get("VAULT_SKIP_VERIFY")
                    .is_some_and(|v| truthy(&v))
            }),
        }
    }
}

fn truthy(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// `~/.vault-token`, as written by `vault login`.
fn read_token_file(home: &Path) -> Option<String> {
    let text = std::fs::read_to_string(home.join(".vault-token")).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_owned())
}
